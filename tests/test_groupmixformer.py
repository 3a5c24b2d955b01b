"""GroupMixFormer backbone: variants, input sizes, gradients, freezing, checkpointing, autocast, parity."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mixformer_mm.converters import convert_groupmixformer
from mixformer_mm.models.backbones import GroupMixFormer
from tests.backbone_checks import (DETECTION_HW, DETECTION_SIZE, check_bad_inputs_are_named, check_bf16_autocast_trains,
                                   check_frozen_stages, check_gradients_reach_every_parameter,
                                   check_norm_eval_keeps_bn_statistics, check_outputs, check_with_cp_matches_plain,
                                   randomise_bn_statistics, strided_hw)
from tests.reference import groupmixformer_functional as reference

TINY = dict(embed_dims=[20, 40, 40, 40], depths=[1, 2, 1, 1], mlp_ratios=[2, 2, 2, 2])
VARIANTS = ['m', 't', 's', 'b', 'l']

# Official module's counts (spec section 4.3): backbone without norm4/head, and the full ImageNet model.
BACKBONE_PARAMS_M = {'m': 5.572, 't': 10.708, 's': 22.100, 'b': 45.345, 'l': 71.352}
PUBLISHED_PARAMS_M = {'m': 5.7, 't': 11.0, 's': 22.4, 'b': 45.8}


@pytest.mark.parametrize('arch', VARIANTS)
def test_variants_param_counts_match_official(arch):
    model = GroupMixFormer(arch=arch)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert params == pytest.approx(BACKBONE_PARAMS_M[arch], abs=0.0005)


@pytest.mark.parametrize('arch', ['m', 't', 's', 'b'])
def test_imagenet_param_counts_match_published(arch):
    model = GroupMixFormer(arch=arch, final_norm=True)
    c3 = model.embed_dims[-1]
    total = sum(p.numel() for p in model.parameters()) + c3 * 1000 + 1000  # + Linear head
    assert total / 1e6 == pytest.approx(PUBLISHED_PARAMS_M[arch], rel=0.01)


@pytest.mark.parametrize('size', [(224, 224), (223, 225), (64, 96)])
def test_output_shapes_any_size(size):
    check_outputs(GroupMixFormer(arch=TINY), size, TINY['embed_dims'], strided_hw(size))


def test_detection_size_800x1333_batch1():
    check_outputs(GroupMixFormer(arch='m'), DETECTION_SIZE, [40, 80, 160, 160], DETECTION_HW)


def test_out_indices_and_final_norm():
    model = GroupMixFormer(arch=TINY, out_indices=(1, 3)).eval()
    outs = model(torch.randn(2, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [40, 40]
    model = GroupMixFormer(arch=TINY, out_indices=-1, final_norm=True).eval()
    randomise_bn_statistics(model)
    plain = GroupMixFormer(arch=TINY, out_indices=-1).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    x = torch.randn(2, 3, 64, 64)
    normed, raw = model(x)[0], plain(x)[0]
    assert torch.allclose(normed, model.final_norm(raw), atol=1e-6)
    with pytest.raises(IndexError, match='out_indices'):
        GroupMixFormer(arch=TINY, out_indices=(4, ))


def test_gradients_reach_every_parameter():
    check_gradients_reach_every_parameter(GroupMixFormer(arch=TINY, final_norm=True, drop_path_rate=0.1))


@pytest.mark.parametrize('frozen_stages', [0, 2, 4])
def test_frozen_stages_freeze_weights_and_bn_statistics(frozen_stages):
    check_frozen_stages(GroupMixFormer(arch=TINY, frozen_stages=frozen_stages), frozen_stages)


def test_norm_eval_keeps_bn_statistics():
    check_norm_eval_keeps_bn_statistics(GroupMixFormer(arch=TINY, norm_eval=True))


def test_with_cp_same_outputs_gradients_and_bn_statistics():
    check_with_cp_matches_plain(lambda with_cp: GroupMixFormer(arch=TINY, drop_path_rate=0.2, with_cp=with_cp))


def test_bf16_autocast_cpu():
    outs = check_bf16_autocast_trains(GroupMixFormer(arch=TINY))
    assert all(o.dtype == torch.bfloat16 for o in outs)


# --- equivalence with the official architecture ------------------------------------------------------------
def _converted_pair(arch, dtype=torch.float64, seed=0):
    settings = GroupMixFormer.arch_zoo[arch] if isinstance(arch, str) else arch
    official = reference.synthesize_official_state_dict(settings['embed_dims'], settings['depths'],
                                                        settings['mlp_ratios'], seed=seed, dtype=dtype)
    converted = convert_groupmixformer(official)
    model = GroupMixFormer(arch=arch, final_norm=True, out_indices=(0, 1, 2, 3)).to(dtype).eval()
    backbone_state = {k[len('backbone.'):]: v for k, v in converted.items() if k.startswith('backbone.')}
    model.load_state_dict(backbone_state, strict=True)
    return official, converted, model


def _logits(model, converted, x):
    last = model(x)[-1]
    return torch.nn.functional.linear(last.mean(dim=(2, 3)), converted['head.fc.weight'], converted['head.fc.bias'])


@pytest.mark.parametrize('arch', ['m', 't'])
def test_equivalent_to_official_architecture_float64(arch):
    # float64 convolutions are slow on CPU, so a 96x128 input; the fp32 test below runs at 224x224.
    official, converted, model = _converted_pair(arch)
    x = torch.randn(1, 3, 96, 128, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(x)
        theirs = reference.forward_features(official, x)
        theirs[-1] = reference._bn(theirs[-1], official, 'norm4.')  # final_norm=True in ours
        for a, b in zip(ours, theirs):
            assert torch.allclose(a, b, atol=1e-10, rtol=0)
        theirs_logits = reference.forward_logits(official, x)
        ours_logits = _logits(model, converted, x)
    assert theirs_logits.abs().max() > 0.1  # not a trivially small comparison
    assert (ours_logits - theirs_logits).abs().max() < 1e-10


def test_equivalent_to_official_architecture_float32_tolerance():
    # The synthetic weights give logits of magnitude ~1e3, so fp32 rounding alone moves them by ~1e-3, and our
    # channels-last kernels round differently from the official NCHW ones. The fair check is against the float64
    # truth: our fp32 forward must be about as accurate as the official architecture's own fp32 forward.
    official, converted, model = _converted_pair('s', dtype=torch.float32, seed=3)
    official64, converted64, _ = _converted_pair('s', dtype=torch.float64, seed=3)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        truth = reference.forward_logits(official64, x.double())
        ours_error = (_logits(model, converted, x).double() - truth).abs().max()
        official_error = (reference.forward_logits(official, x).double() - truth).abs().max()
    assert ours_error <= 2 * official_error
    assert ours_error <= 2e-6 * truth.abs().max()


def test_equivalent_at_detection_size_multiple_of_32():
    official, _, model = _converted_pair(TINY, seed=5)
    x = torch.randn(1, 3, 256, 320, dtype=torch.float64)
    with torch.no_grad():
        theirs = reference.forward_features(official, x)
        theirs[-1] = reference._bn(theirs[-1], official, 'norm4.')  # our model here has final_norm=True
        for a, b in zip(model(x), theirs):
            assert torch.allclose(a, b, atol=1e-10, rtol=0)


def test_official_key_count_and_stacked_bn_training_statistics():
    settings = GroupMixFormer.arch_zoo['s']
    shapes = reference.official_state_dict_shapes(settings['embed_dims'], settings['depths'], settings['mlp_ratios'])
    assert len(shapes) == 49 + 50 * sum(settings['depths']) == 1149
    # In training, each aggregator BN sees Q, K and V as one batch of 3B: its running mean moves towards the
    # mean over all three, which differs from a mean over Q alone.
    model = GroupMixFormer(arch=TINY).train()
    attn = model.stages[0].blocks[0].attn
    tokens = torch.randn(2, 16 * 16, 20)
    qkv = attn.qkv(tokens).detach()
    attn.token_branch.bn.momentum = 1.0
    attn(tokens, (16, 16))
    seg = attn.seg_dims
    stacked = torch.stack([qkv[..., i * 20:i * 20 + seg] for i in range(3)])  # first segment of q, k, v
    assert torch.allclose(attn.token_branch.bn.running_mean, stacked.mean(dim=(0, 1, 2)), atol=1e-5)


class _Allocations(TorchDispatchMode):
    """Records the operators that write a new tensor (not a view of an input), with its number of elements."""

    def __init__(self):
        super().__init__()
        self.allocations = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {arg.untyped_storage().data_ptr() for arg in args if isinstance(arg, torch.Tensor)}
        if isinstance(out, torch.Tensor) and out.untyped_storage().data_ptr() not in inputs:
            self.allocations.append((func.overloadpacket.__name__, out.numel()))
        return out


def test_attention_backward_assembles_the_qkv_gradient_once():
    # Selecting the five segments one by one made autograd zero-fill a gradient of the whole QKV projection per
    # segment and sum the five: about 6% of GroupMixFormer-B's CPU training step (README, "Speed and memory").
    attn = GroupMixFormer(arch=TINY).stages[0].blocks[0].attn
    tokens = torch.randn(2, 16 * 16, 20, requires_grad=True)
    out = attn(tokens, (16, 16))
    qkv_numel = tokens.shape[0] * tokens.shape[1] * 3 * attn.embed_dims
    with _Allocations() as probe:
        out.sum().backward()
    qkv_sized = [name for name, numel in probe.allocations if numel == qkv_numel]
    assert len(qkv_sized) == 1, qkv_sized


# --- errors that name the problem ---------------------------------------------------------------------------
def test_unknown_arch_lists_valid_names():
    with pytest.raises(KeyError, match=r"unknown arch 'xl'.*'b'.*'l'.*'m'.*'s'.*'t'"):
        GroupMixFormer(arch='xl')


def test_custom_arch_constraints():
    with pytest.raises(ValueError, match='not divisible by 10'):
        GroupMixFormer(arch=dict(embed_dims=[24, 40, 40, 40], depths=[1] * 4, mlp_ratios=[2] * 4))
    with pytest.raises(ValueError, match='num_heads must be 8'):
        GroupMixFormer(arch=dict(TINY, num_heads=4))
    with pytest.raises(KeyError, match='lacks'):
        GroupMixFormer(arch=dict(embed_dims=[20] * 4))


def test_bad_inputs_are_named():
    check_bad_inputs_are_named(GroupMixFormer(arch=TINY))
