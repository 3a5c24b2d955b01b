"""The layers the backbones share (mixformer_mm/models/layers): against torch's own ops and the forms the backbones
used before sharing them, at float64 (values) and bit for bit (views, strides, gradients), plus the state-dict keys
that converted checkpoints rely on."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import initialize
from mmengine.registry import DefaultScope
from torch import nn

from mixformer_mm.models.backbones import DGT, GLNet
from mixformer_mm.models.layers import map_to_tokens, to_channels_last, tokens_to_map
from mixformer_mm.models.layers.attention import MultiheadSelfAttention, merge_heads, split_fused_qkv, split_heads
from mixformer_mm.models.layers.conv_layers import ConvPositionEncoding
from mixformer_mm.models.layers.ffn import token_ffn
from mixformer_mm.models.layers.norm import LayerNorm2d
from mixformer_mm.utils.launch_count import count_eager
from tests.test_dgt import TINY as DGT_TINY
from tests.test_glnet import TINY as GLNET_TINY

F64 = torch.float64


def randomise(module: nn.Module) -> nn.Module:
    """Parameters drawn at random, so that a wrong weight or bias (defaults: ones, zeros) cannot pass."""
    with torch.no_grad():
        for param in module.parameters():
            param.normal_()
    return module


def grads(loss: torch.Tensor, *tensors: torch.Tensor):
    return torch.autograd.grad(loss, tensors)


# --- channels-first LayerNorm ---------------------------------------------------------------------------------
def reference_layer_norm2d(x, weight, bias, eps):
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'channels_last'])
def test_layer_norm2d_normalises_channels_like_the_formula(channels_last):
    norm = randomise(LayerNorm2d(6, eps=1e-6)).to(F64)
    x = torch.randn(2, 6, 5, 7, dtype=F64) * 3 + 1
    if channels_last:
        x = to_channels_last(x)
    x.requires_grad_(True)
    expected = reference_layer_norm2d(x, norm.weight, norm.bias, norm.eps)
    out = norm(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    probe = torch.randn_like(out)
    for got, want in zip(grads((out * probe).sum(), x, norm.weight, norm.bias),
                         grads((expected * probe).sum(), x, norm.weight, norm.bias)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_layer_norm2d_is_the_former_glnet_and_dgt_norms_bit_for_bit():
    norm = randomise(LayerNorm2d(8, eps=1e-6))
    x = to_channels_last(torch.randn(2, 8, 6, 6)).requires_grad_(True)
    out = norm(x)
    # GLNet's LayerNorm2d and DGT's ChannelsFirstLayerNorm, as they were
    glnet_form = F.layer_norm(x.permute(0, 2, 3, 1), norm.normalized_shape, norm.weight, norm.bias,
                              norm.eps).permute(0, 3, 1, 2)
    dgt_form = nn.LayerNorm.forward(norm, x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert torch.equal(out, glnet_form) and torch.equal(out, dgt_form)
    assert out.stride() == glnet_form.stride() == dgt_form.stride()
    probe = torch.randn_like(out)
    for got, want in zip(grads((out * probe).sum(), x, norm.weight), grads((dgt_form * probe).sum(), x, norm.weight)):
        assert torch.equal(got, want)


def test_layer_norm2d_keeps_channels_last_where_mmpretrains_copies_to_nchw():
    from mmpretrain.models.utils import LayerNorm2d as MMPretrainLayerNorm2d
    ours = randomise(LayerNorm2d(8, eps=1e-6))
    theirs = MMPretrainLayerNorm2d(8, eps=1e-6)
    theirs.load_state_dict(ours.state_dict())
    x = to_channels_last(torch.randn(2, 8, 5, 5))
    out = ours(x)
    torch.testing.assert_close(out, theirs(x), rtol=0, atol=1e-6)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert not theirs(x).is_contiguous(memory_format=torch.channels_last)
    assert count_eager(lambda: ours(x)).ops < count_eager(lambda: theirs(x)).ops  # its .contiguous() copy


def test_layer_norm2d_keys_and_layer_norm_init_rules():
    norm = randomise(LayerNorm2d(4))
    assert list(norm.state_dict()) == ['weight', 'bias']
    initialize(norm, dict(type='Constant', layer='LayerNorm', val=1., bias=0.))  # the backbones' default init
    assert torch.equal(norm.weight, torch.ones(4)) and torch.equal(norm.bias, torch.zeros(4))


@pytest.mark.parametrize('scope', ['mixformer_mm', 'mmdet', 'mmseg', 'mmpretrain'])
def test_ln2d_norm_cfg_builds_a_channels_first_layer_norm_under_every_scope(scope):
    import importlib
    importlib.import_module(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        norm = build_norm_layer(dict(type='LN2d', eps=1e-6), 8)[1]
    # mmpretrain's scope finds its own LN2d (same numbers, NCHW output); every other scope finds ours
    assert isinstance(norm, LayerNorm2d) == (scope != 'mmpretrain')
    assert isinstance(norm, nn.LayerNorm) and norm.eps == 1e-6
    randomise(norm)
    x = to_channels_last(torch.randn(2, 8, 4, 4))
    torch.testing.assert_close(norm(x), reference_layer_norm2d(x, norm.weight, norm.bias, 1e-6), rtol=0, atol=1e-5)


@pytest.mark.parametrize('backbone, arch', [(GLNet, GLNET_TINY), (DGT, DGT_TINY)], ids=['glnet', 'dgt'])
def test_backbone_norm_cfg_takes_ln2d(backbone, arch):
    model = backbone(arch=arch, norm_cfg=dict(type='LN2d'), out_indices=(3, ))
    # ours, or mmpretrain's equivalent when an earlier test left mmpretrain as mmengine's default scope
    assert any(type(m).__name__ == 'LayerNorm2d' and isinstance(m, nn.LayerNorm) for m in model.stem.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.stem.modules())
    out, = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, arch['embed_dims'][3], 2, 2) and torch.isfinite(out).all()


# --- conditional position encoding ------------------------------------------------------------------------------
def test_conv_position_encoding_adds_a_depthwise_conv_of_the_token_map():
    cpe = randomise(ConvPositionEncoding(6)).to(F64)
    hw = (7, 5)
    tokens = torch.randn(2, 35, 6, dtype=F64, requires_grad=True)
    feature_map = tokens.transpose(1, 2).reshape(2, 6, *hw)  # row-major tokens, by plain ops
    expected = tokens + F.conv2d(feature_map, cpe.weight, cpe.bias, padding=1, groups=6).flatten(2).transpose(1, 2)
    out = cpe(tokens, hw)
    assert out.shape == tokens.shape and out.is_contiguous()
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    probe = torch.randn_like(out)
    for got, want in zip(grads((out * probe).sum(), tokens, cpe.weight, cpe.bias),
                         grads((expected * probe).sum(), tokens, cpe.weight, cpe.bias)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert list(cpe.state_dict()) == ['weight', 'bias']  # the keys of the bare conv it replaces
    assert cpe.weight.shape == (6, 1, 3, 3)


def test_conv_position_encoding_is_groupmixformers_former_cpe_bit_for_bit():
    cpe = randomise(ConvPositionEncoding(8))
    hw = (5, 6)
    tokens = torch.randn(2, 30, 8, requires_grad=True)
    out = cpe(tokens, hw)
    # GroupMixFormer's CPE as it was: the residual added on the channels-last map, then back to tokens
    feature_map = tokens_to_map(tokens, hw)
    former = map_to_tokens(feature_map + F.conv2d(feature_map, cpe.weight, cpe.bias, padding=1, groups=8))
    assert torch.equal(out, former) and out.stride() == former.stride()
    probe = torch.randn_like(out)
    for got, want in zip(grads((out * probe).sum(), tokens, cpe.weight, cpe.bias),
                         grads((former * probe).sum(), tokens, cpe.weight, cpe.bias)):
        assert torch.equal(got, want)


def test_conv2d_init_rules_reach_the_conv_position_encoding():
    # DGT's Kaiming init names layer='Conv2d'; mmengine matches a class and its direct bases only
    cpe = ConvPositionEncoding(4)
    initialize(cpe, dict(type='Constant', layer='Conv2d', val=0.5, bias=0.25))
    assert torch.equal(cpe.weight, torch.full_like(cpe.weight, 0.5))
    assert torch.equal(cpe.bias, torch.full_like(cpe.bias, 0.25))


# --- multi-head attention --------------------------------------------------------------------------------------
def test_split_and_merge_heads_are_inverse_views():
    x = torch.randn(2, 3, 10, 12)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 3, 4, 10, 3)
    assert heads.data_ptr() == x.data_ptr() and heads._base is x  # no copy
    assert torch.equal(heads[:, :, 1], x[..., 3:6])  # head j owns channels [j*d, (j+1)*d)
    assert torch.equal(merge_heads(heads), x)
    # GroupMixFormer's former head split
    assert torch.equal(heads, x.unflatten(-1, (4, 3)).transpose(-3, -2))


def test_split_fused_qkv_matches_the_former_chunk_and_permute_splits():
    batch, length, channels, num_heads = 2, 9, 12, 3
    qkv = torch.randn(batch, length, 3 * channels)
    fused = split_fused_qkv(qkv, num_heads)
    chunked = [split_heads(t, num_heads) for t in qkv.chunk(3, dim=-1)]  # MAFormer's
    permuted = qkv.view(batch, length, 3, num_heads, channels // num_heads).permute(2, 0, 3, 1, 4).unbind(0)  # DGT's
    for ours, *former in zip(fused, chunked, permuted):
        assert ours.shape == (batch, num_heads, length, channels // num_heads)
        assert ours.data_ptr() in (qkv.data_ptr() + k * channels * qkv.element_size() for k in range(3))
        for other in former:
            assert torch.equal(ours, other) and ours.stride() == other.stride()


def test_split_fused_qkv_backward_is_one_stack_into_the_projection_layout():
    qkv = torch.randn(2, 16, 3 * 8, requires_grad=True)
    probes = [torch.randn(2, 2, 16, 4) for _ in range(3)]

    def loss(parts):
        return sum((part * probe).sum() for part, probe in zip(parts, probes))

    fused_grad, = grads(loss(split_fused_qkv(qkv, 2)), qkv)
    chunk_grad, = grads(loss([split_heads(t, 2) for t in qkv.chunk(3, dim=-1)]), qkv)
    assert torch.equal(fused_grad, chunk_grad)

    def backward_ops(split):
        parts = split()
        return count_eager(lambda: torch.autograd.grad(parts, qkv, probes)).ops

    fused_ops = backward_ops(lambda: split_fused_qkv(qkv, 2))
    chunk_ops = backward_ops(lambda: [split_heads(t, 2) for t in qkv.chunk(3, dim=-1)])
    assert fused_ops == 1 and chunk_ops > fused_ops


def reference_attention(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = F.linear(x, qkv_weight, qkv_bias).chunk(3, dim=-1)
    heads = [t.unflatten(-1, (num_heads, -1)).transpose(1, 2) for t in (q, k, v)]
    scores = heads[0] @ heads[1].transpose(-1, -2) / math.sqrt(heads[0].shape[-1])
    out = (scores.softmax(dim=-1) @ heads[2]).transpose(1, 2).flatten(2)
    return F.linear(out, proj_weight, proj_bias)


def test_multihead_self_attention_matches_the_formula_and_torch_mha():
    attn = randomise(MultiheadSelfAttention(16, 4)).to(F64)
    x = torch.randn(2, 11, 16, dtype=F64, requires_grad=True)
    out = attn(x)
    expected = reference_attention(x, attn.qkv.weight, attn.qkv.bias, attn.proj.weight, attn.proj.bias, 4)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    params = list(attn.parameters())
    probe = torch.randn_like(out)
    for got, want in zip(grads((out * probe).sum(), x, *params), grads((expected * probe).sum(), x, *params)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)

    # the maths of nn.MultiheadAttention (GLNet's official attention): its in_proj is our qkv
    mha = nn.MultiheadAttention(16, 4, batch_first=True).to(F64)
    mha.load_state_dict({'in_proj_weight': attn.qkv.weight, 'in_proj_bias': attn.qkv.bias,
                         'out_proj.weight': attn.proj.weight, 'out_proj.bias': attn.proj.bias})
    torch.testing.assert_close(out, mha(x, x, x, need_weights=False)[0], rtol=1e-10, atol=1e-10)
    assert list(attn.state_dict()) == ['qkv.weight', 'qkv.bias', 'proj.weight', 'proj.bias']


def test_multihead_self_attention_options():
    assert MultiheadSelfAttention(8, 2, qkv_bias=False).qkv.bias is None
    with pytest.raises(ValueError, match='not divisible'):
        MultiheadSelfAttention(10, 4)


# --- token FFN ---------------------------------------------------------------------------------------------------
def test_token_ffn_is_a_residual_gelu_mlp_with_the_checkpoint_keys():
    ffn = randomise(token_ffn(8, 2.5)).to(F64).eval()
    assert list(ffn.state_dict()) == ['layers.0.0.weight', 'layers.0.0.bias', 'layers.1.weight', 'layers.1.bias']
    assert ffn.layers[0][0].out_features == 20
    x = torch.randn(2, 5, 8, dtype=F64, requires_grad=True)
    identity = torch.randn(2, 5, 8, dtype=F64)
    fc1, fc2 = ffn.layers[0][0], ffn.layers[1]
    expected = identity + fc2(F.gelu(fc1(x)))
    out = ffn(x, identity=identity)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    probe = torch.randn_like(out)
    for got, want in zip(grads((out * probe).sum(), x, fc1.weight), grads((expected * probe).sum(), x, fc1.weight)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ffn(x), x + fc2(F.gelu(fc1(x))), rtol=1e-12, atol=1e-12)  # identity defaults to x


def test_token_ffn_layer_scale_and_drop_path():
    ffn = token_ffn(8, 2, drop_path_rate=0.5, layer_scale=1e-2)
    assert list(ffn.state_dict())[-1] == 'gamma2.weight'
    assert torch.equal(ffn.gamma2.weight, torch.full((8, ), 1e-2))
    x = torch.randn(64, 3, 8)
    branch = ffn.gamma2(ffn.layers(x))
    ffn.eval()
    torch.testing.assert_close(ffn(x), x + branch)
    ffn.train()
    out = ffn(x)
    # DropPath per sample: each either keeps only its identity or gets the branch scaled by 1 / keep_prob
    dropped = torch.isclose(out, x).flatten(1).all(1)
    kept = torch.isclose(out, x + branch / 0.5, rtol=1e-5, atol=1e-6).flatten(1).all(1)
    assert (dropped ^ kept).all() and 0 < dropped.sum() < 64
    assert token_ffn(8, 4).dropout_layer.__class__ is nn.Identity
