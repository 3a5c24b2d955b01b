"""MAFormer backbone: sizes, GLD at any input size, switches, gradients, freezing, checkpointing, autocast, the
GLD resolution converter, and equivalence with an independent functional forward written from the spec."""
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from mixformer_mm.models.backbones import MAFormer
from mixformer_mm.models.backbones.maformer import (AttentionFusion, GlobalDownsampling, resize_gld_checkpoint,
                                                    resize_token_fc)
from tests.backbone_checks import (check_bad_inputs_are_named, check_bf16_autocast_trains, check_frozen_stages,
                                   check_outputs, check_with_cp_matches_plain, parameters_without_gradient, square_loss)
from tests.config_checks import load_script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# widths 16, 32, 64, 128; GLD reference grids 16x16 and 8x8 (pretrain_img_size 64)
TINY = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4])
TINY_KW = dict(arch=TINY, pretrain_img_size=64)

# spec section 2.6 (our design's analytic counts, ImageNet classifier with its 1000-way head)
SPEC_PARAMS_M = {'s': 28.2, 'b': 46.4, 'l': 89.7}
SPEC_GMACS = {'s': 5.8, 'b': 9.7, 'l': 19.5}
# measured with tools/analysis_tools/get_flops.py (configs/maformer/README.md)
MEASURED = {'s': (28.205, 5.839), 'b': (46.412, 9.725), 'l': (89.723, 19.515)}
IN1K_CONFIGS = {'s': 'maformer-s_8xb256_in1k.py', 'b': 'maformer-b_8xb256_in1k.py', 'l': 'maformer-l_8xb128_in1k.py'}


# every test here runs with one thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures('one_thread')


# --- sizes ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('arch', ['s', 'b', 'l'])
def test_params_and_flops_within_1_percent_of_spec(arch):
    from mixformer_mm.engine import load_config
    cfg = load_config(os.path.join(REPO, 'configs/maformer', IN1K_CONFIGS[arch]))
    params, flops = load_script('tools/analysis_tools/get_flops.py', 'get_flops').count(cfg, (224, 224))
    params, flops = params / 1e6, flops / 1e9
    assert params == pytest.approx(SPEC_PARAMS_M[arch], rel=0.01)
    assert flops == pytest.approx(SPEC_GMACS[arch], rel=0.01)
    assert (params, flops) == pytest.approx(MEASURED[arch], abs=0.0005)  # the README's figures


def test_gld_token_fc_params_are_the_spec_counts():
    # spec 2.6: 5.5M (S, 1+2 MAF blocks) and 11.1M (B/L, 2+4) in the GLD FCs, independent of the width
    for arch, expected in (('s', 5.5), ('b', 11.1), ('l', 11.1)):
        model = MAFormer(arch=arch)
        count = sum(p.numel() for n, p in model.named_parameters() if '.token_fc.' in n)
        assert count / 1e6 == pytest.approx(expected, abs=0.05)


def test_output_shapes_at_224_variant_s():
    model = MAFormer(arch='s').eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 56, 56), (1, 128, 28, 28), (1, 256, 14, 14), (1, 512, 7, 7)]
    assert all(torch.isfinite(o).all() for o in outs)


def _expected_hw(height, width):
    hw = ((height - 3) // 4 + 1, (width - 3) // 4 + 1)  # k7 s4 p2 stem
    sizes = [hw]
    for _ in range(3):
        hw = (-(-hw[0] // 2), -(-hw[1] // 2))
        sizes.append(hw)
    return sizes


@pytest.mark.parametrize('size', [(256, 320), (800, 1216), (511, 769), (223, 225), (64, 64)])
def test_output_shapes_any_size(size):
    outs = check_outputs(MAFormer(**TINY_KW), size, [16, 32, 64, 128], _expected_hw(*size))
    if size[0] % 32 == 0 and size[1] % 32 == 0:
        assert [tuple(o.shape[-2:]) for o in outs] == [(size[0] // s, size[1] // s) for s in (4, 8, 16, 32)]


# --- GLD ----------------------------------------------------------------------------------------------------------
def test_gld_at_reference_size_is_the_direct_token_fc(monkeypatch):
    gld = GlobalDownsampling(8, (16, 16), ratio=0.5)
    x = torch.randn(2, 256, 8)

    def no_resampling(*args, **kwargs):
        raise AssertionError('GLD resampled at its reference size')

    monkeypatch.setattr(F, 'interpolate', no_resampling)
    monkeypatch.setattr(F, 'adaptive_avg_pool2d', no_resampling)
    out = gld(x, (16, 16))
    # the paper's operator: G = X_G W_tok^T + b on channel-first tokens (B, C, L), transposed, plus Pos
    direct = torch.einsum('bcl,gl->bgc', x.transpose(1, 2), gld.token_fc.weight)
    direct = direct + gld.token_fc.bias[None, :, None] + gld.pos_embed
    assert out.shape == (2, 128, 8)
    assert torch.allclose(out, direct, atol=1e-6)


@pytest.mark.parametrize('resize', ['bilinear', 'area'])
def test_gld_elsewhere_is_token_fc_of_the_resampled_map(resize):
    gld = GlobalDownsampling(8, (16, 16), ratio=0.5, resize=resize)
    for hw in ((40, 24), (10, 12)):  # shrinking (anti-aliased) and enlarging
        x = torch.randn(2, hw[0] * hw[1], 8)
        fmap = x.transpose(1, 2).reshape(2, 8, *hw)
        if resize == 'bilinear':
            resampled = F.interpolate(fmap, size=(16, 16), mode='bilinear', align_corners=False,
                                      antialias=hw[0] > 16)
        else:
            resampled = F.adaptive_avg_pool2d(fmap, (16, 16))
        expected = gld.token_fc(resampled.flatten(2)).transpose(1, 2) + gld.pos_embed
        assert torch.allclose(gld(x, hw), expected, atol=1e-6)


def test_gld_parameter_shapes_do_not_depend_on_input_size():
    arch = dict(TINY, depths=[1, 2, 1, 1])
    at_224 = MAFormer(arch=arch, pretrain_img_size=224).eval()
    shapes = {k: tuple(v.shape) for k, v in at_224.state_dict().items()}
    assert shapes['stages.0.blocks.0.gld.token_fc.weight'] == (1568, 3136)
    assert shapes['stages.1.blocks.1.gld.token_fc.weight'] == (392, 784)
    assert shapes['stages.1.blocks.1.gld.pos_embed'] == (1, 392, 32)
    fresh = MAFormer(arch=arch, pretrain_img_size=224).eval()
    fresh.load_state_dict(at_224.state_dict(), strict=True)
    x = torch.randn(1, 3, 800, 1216)
    with torch.no_grad():
        outs = fresh(x)
        assert [tuple(o.shape[-2:]) for o in outs] == [(200, 304), (100, 152), (50, 76), (25, 38)]
        assert torch.equal(outs[-1], at_224(x)[-1])
    assert {k: tuple(v.shape) for k, v in fresh.state_dict().items()} == shapes


def test_fusion_scores_are_never_materialised():
    """At stage 1 of an 800x1216 image (60800 local tokens), the fusion runs through a fused SDPA kernel."""
    fusion = AttentionFusion(16, num_heads=1).eval()
    local, global_tokens = torch.randn(1, 60800, 16), torch.randn(1, 128, 16)
    with torch.no_grad(), torch.profiler.profile(record_shapes=True) as prof:
        fusion(local, global_tokens, (200, 304))
    names = {e.name for e in prof.events()}
    assert 'aten::scaled_dot_product_attention' in names
    assert not names & {'aten::softmax', 'aten::_softmax', 'aten::bmm', 'aten::baddbmm'}, names


def test_every_attention_goes_through_sdpa(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(q, k, v, *args, **kwargs):
        calls.append((tuple(q.shape), tuple(k.shape)))
        return sdpa(q, k, v, *args, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', counting)
    model = MAFormer(arch=dict(TINY, depths=[2, 1, 1, 1]), pretrain_img_size=64).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    # 3 MAF blocks x (window + fusion) + 2 global blocks
    assert len(calls) == 8
    fusion_calls = [c for c in calls if c[0][-2] == 256]
    assert fusion_calls and all(c[1][-2] == 128 for c in fusion_calls)  # 256 local tokens attend to 128 global


def _nonzero_resize_weights(in_size, out_size):
    """Nonzero weights of PyTorch's anti-aliased bilinear resize along one axis, read off its impulse responses."""
    impulses = torch.eye(in_size).reshape(in_size, 1, 1, in_size)
    matrix = F.interpolate(impulses, size=(1, out_size), mode='bilinear', align_corners=False, antialias=True)
    return int((matrix != 0).sum())


def test_flops_include_the_antialiased_gld_resampling():
    """FlopAnalyzer has no rule for the anti-aliased resize; GLD reports its multiply-adds (one per filter weight,
    horizontal pass then vertical pass)."""
    from mixformer_mm.utils.flops import count_flops

    gld = GlobalDownsampling(8, (16, 16), ratio=0.5, with_pos=False).eval()
    token_fc_macs = 8 * 256 * 128
    with torch.no_grad():
        assert count_flops(gld, (torch.randn(1, 256, 8), (16, 16))) == token_fc_macs  # reference size: no resize
        resize_macs = 8 * (40 * _nonzero_resize_weights(32, 16) + 16 * _nonzero_resize_weights(40, 16))
        assert count_flops(gld, (torch.randn(1, 40 * 32, 8), (40, 32))) == token_fc_macs + resize_macs
        resize_macs = 8 * 16 * _nonzero_resize_weights(57, 16)  # only the height changes
        assert count_flops(gld, (torch.randn(1, 57 * 16, 8), (57, 16))) == token_fc_macs + resize_macs


def test_gld_init_pool_is_row_pair_averaging():
    gld = GlobalDownsampling(4, (6, 8), ratio=0.5, with_pos=False, init='pool')
    fmap = torch.randn(1, 4, 6, 8)
    out = gld(fmap.flatten(2).transpose(1, 2), (6, 8))
    pooled = F.avg_pool2d(fmap, (2, 1)).flatten(2).transpose(1, 2)
    assert torch.allclose(out, pooled, atol=1e-6)


# --- switches, gradients, modes -----------------------------------------------------------------------------------
SWITCHES = [
    dict(),
    dict(shift_windows=True),
    dict(gld_cfg=dict(pos='shared_interp')),
    dict(gld_cfg=dict(pos='from_input')),
    dict(gld_cfg=dict(pos='none'), global_pos='none'),
    dict(fusion_cfg=dict(mode='add')),
    dict(fusion_cfg=dict(mode='concat_linear')),
    dict(fusion_cfg=dict(ffn=True), gld_cfg=dict(init='pool', resize='area')),
    dict(maf_stages=(0, 1, 2), window_size=5, gld_cfg=dict(ratio=0.25)),
    dict(stem='conv', cpe=True),
]


@pytest.mark.parametrize('switches', SWITCHES, ids=lambda s: '-'.join(f'{k}={v}' for k, v in s.items()) or 'default')
def test_gradients_reach_every_parameter(switches):
    arch = dict(TINY, depths=[2, 2, 1, 1])
    model = MAFormer(arch=arch, pretrain_img_size=64, drop_path_rate=0.1, **switches)
    model.init_weights()
    model.train()
    for size in ((64, 64), (72, 100)):  # reference size and a resampled, window-padded size
        outs = model(torch.randn(2, 3, *size))
        assert [tuple(o.shape[-2:]) for o in outs] == _expected_hw(*size)
        square_loss(outs).backward()
    missing = parameters_without_gradient(model)
    assert not missing
    names = {n for n, _ in model.named_parameters()}
    gld_pos = switches.get('gld_cfg', {}).get('pos', 'per_block')
    if switches.get('fusion_cfg', {}).get('mode', 'cross_attn') == 'cross_attn':
        for part in ('gld.token_fc.weight', 'fusion.q.weight', 'fusion.k.weight', 'fusion.v.weight',
                     'fusion.proj.weight'):
            assert f'stages.0.blocks.0.{part}' in names
    if gld_pos == 'per_block':
        assert 'stages.1.blocks.1.gld.pos_embed' in names
    if gld_pos == 'shared_interp':
        assert {'stages.0.pos_embed', 'stages.1.pos_proj.weight'} <= names
        assert not any('gld.pos_embed' in n for n in names)


def test_position_from_input_is_the_input_resampled_onto_the_global_grid():
    gld = GlobalDownsampling(4, (8, 16), with_pos=False, pos_from_input=True)
    assert gld.global_hw == (4, 16) and not any('pos' in name for name, _ in gld.named_parameters())
    for hw in ((8, 16), (8, 4), (13, 27), (3, 5)):  # reference size, narrower, larger and odd, smaller than Hg x Wg
        fmap = torch.randn(2, 4, *hw)
        tokens = fmap.flatten(2).transpose(1, 2)
        out = gld(tokens, hw)
        assert out.shape == (2, 64, 4)
        shrinking = hw[0] > 4 or hw[1] > 16
        expected_pos = F.interpolate(fmap, size=(4, 16), mode='bilinear', align_corners=False, antialias=shrinking)
        with torch.no_grad():
            gld.pos_from_input = False
            fc_only = gld(tokens, hw)
            gld.pos_from_input = True
        assert torch.allclose(out - fc_only, expected_pos.flatten(2).transpose(1, 2), atol=1e-5), hw
    # FlopAnalyzer cannot price the anti-aliased resamplings: GLD reports both, the FC's input and the position's
    from mixformer_mm.models.backbones.maformer import antialiased_resize_macs
    from mixformer_mm.utils.flops import count_flops
    count_flops(gld, (torch.randn(2, 13 * 27, 4), (13, 27)))  # a plain forward no longer does the accounting
    assert gld.uncounted_flops() == (antialiased_resize_macs((13, 27), (8, 16), 8)
                                     + antialiased_resize_macs((13, 27), (4, 16), 8)) > 0


def test_position_from_input_builds_no_embedding_and_refuses_a_gridless_ratio():
    model = MAFormer(**TINY_KW, gld_cfg=dict(pos='from_input'))
    assert not any('pos_embed' in name or 'pos_proj' in name for name, _ in model.named_parameters())
    for size in ((64, 64), (45, 91), (224, 160)):
        assert [tuple(o.shape[-2:]) for o in model(torch.randn(1, 3, *size))] == _expected_hw(*size)
    with pytest.raises(ValueError, match="pos='from_input'.*global grid"):
        MAFormer(**TINY_KW, gld_cfg=dict(pos='from_input', ratio=0.3))


def test_shared_interp_position_embedding_is_one_per_stage():
    model = MAFormer(arch=dict(TINY, depths=[2, 2, 1, 1]), pretrain_img_size=64, gld_cfg=dict(pos='shared_interp'))
    base = model.stages[0].pos_embed
    assert tuple(base.shape) == (1, 16, 8, 16)  # stage-1 global grid: (H0 / 2, W0)
    stage2 = model.stages[1].shared_gld_pos(base)
    expected = F.interpolate(base, size=(4, 8), mode='bilinear', align_corners=False, antialias=True)
    expected = model.stages[1].pos_proj(expected.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert torch.allclose(stage2, expected, atol=1e-6)


def test_drop_path_is_inactive_in_eval():
    model = MAFormer(**TINY_KW, drop_path_rate=0.5)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), model(x)))
        model.train()
        torch.manual_seed(0)
        first = model(x)
        torch.manual_seed(1)
        second = model(x)
    assert not all(torch.equal(a, b) for a, b in zip(first, second))


def test_out_indices_and_their_norms():
    model = MAFormer(**TINY_KW, out_indices=(1, 3)).eval()
    assert sorted(model.out_norms.keys()) == ['1', '3']
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outs = model(x)
        assert [o.shape[1] for o in outs] == [32, 128]
        with torch.no_grad():
            model.out_norms['3'].weight.mul_(2.)
        assert torch.allclose(model(x)[1], 2 * outs[1] - model.out_norms['3'].bias[None, :, None, None], atol=1e-5)
    with pytest.raises(IndexError, match='out_indices'):
        MAFormer(**TINY_KW, out_indices=(4, ))


@pytest.mark.parametrize('frozen_stages', [0, 2, 4])
def test_frozen_stages_freeze_weights(frozen_stages):
    check_frozen_stages(MAFormer(**TINY_KW, frozen_stages=frozen_stages), frozen_stages,
                        output_norm_prefix='out_norms.{}.', lr=1.0)


def test_norm_eval_changes_nothing_without_batchnorm():
    # MAFormer uses LayerNorm only; norm_eval (a BatchNorm switch of the common interface) must leave it training.
    plain = MAFormer(**TINY_KW, drop_path_rate=0.2).train()
    with_norm_eval = MAFormer(**TINY_KW, drop_path_rate=0.2, norm_eval=True).train()
    with_norm_eval.load_state_dict(plain.state_dict())
    assert not any(isinstance(m, _BatchNorm) for m in plain.modules())
    assert all(m.training for m in with_norm_eval.modules())
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(3)
    a = plain(x)
    torch.manual_seed(3)
    b = with_norm_eval(x)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_with_cp_same_outputs_and_gradients():
    check_with_cp_matches_plain(lambda with_cp: MAFormer(**TINY_KW, drop_path_rate=0.2, with_cp=with_cp),
                                size=(72, 64))


def test_bf16_autocast_cpu():
    check_bf16_autocast_trains(MAFormer(**TINY_KW), size=(72, 80))  # off the reference grid: GLD resamples too


# --- errors that name the problem ---------------------------------------------------------------------------------
def test_unknown_arch_lists_valid_names():
    with pytest.raises(KeyError, match=r"unknown arch 'xl'.*'b'.*'l'.*'s'"):
        MAFormer(arch='xl')


@pytest.mark.parametrize('kwargs, error, message', [
    (dict(arch=dict(TINY, num_heads=[3, 2, 2, 4])), ValueError, r'not divisible by their heads.*\(16, 3\)'),
    (dict(arch=dict(TINY, depths=[1, 1, 1])), ValueError, r"arch\['depths'\] needs 4 values"),
    (dict(arch=dict(embed_dims=16)), KeyError, 'lacks'),
    (dict(gld_cfg=dict(pos='learned')), ValueError, r"gld_cfg\['pos'\] must be one of"),
    (dict(global_pos='rope'), ValueError, 'global_pos must be one of'),
    (dict(gld_cfg=dict(resize='nearest')), ValueError, r"gld_cfg\['resize'\] must be one of"),
    (dict(fusion_cfg=dict(mode='mul')), ValueError, r"fusion_cfg\['mode'\] must be one of"),
    (dict(gld_cfg=dict(init='zeros')), ValueError, r"gld_cfg\['init'\] must be one of"),
    (dict(maf_stages=(0, 4)), IndexError, 'maf_stages'),
    (dict(gld_cfg=dict(ratio=0.001)), ValueError, 'leaves no global token'),
    (dict(gld_cfg=dict(ratio=0.3), fusion_cfg=dict(mode='add')), ValueError,
     'mode=.add. places the global tokens on a grid'),
    (dict(gld_cfg=dict(ratio=0.25, init='pool')), ValueError, "init='pool'.*needs ratio=0.5"),
    (dict(gld_cfg=dict(ratio=-1)), ValueError, r"gld_cfg\['ratio'\] must be positive"),
    (dict(gld_cfg=dict(ratoi=0.25)), KeyError, r"gld_cfg has no option 'ratoi' \(did you mean 'ratio'\?\)"),
    (dict(fusion_cfg=dict(mode='add', use_ffn=True)), KeyError, r"fusion_cfg has no option 'use_ffn'"),
    (dict(gld_cfg=['ratio', 0.25]), TypeError, 'gld_cfg must be a dict'),
    (dict(gld_ratio=0.25, gld_cfg=dict(ratio=0.5)), ValueError, r"gld_ratio and gld_cfg\['ratio'\] are the same"),
    (dict(gld_ration=0.25), TypeError, "unexpected keyword argument 'gld_ration'"),
    (dict(window_size=0), ValueError, 'window_size must be a positive int'),
    (dict(stem='patch'), ValueError, 'stem must be one of'),
])
def test_bad_arguments_are_named(kwargs, error, message):
    settings = dict(TINY_KW)
    settings.update(kwargs)
    with pytest.raises(error, match=message):
        MAFormer(**settings)


@pytest.mark.filterwarnings('ignore::FutureWarning')
def test_bad_arguments_are_named_when_given_flat():
    """The deprecated flat options are checked by the same rules."""
    with pytest.raises(ValueError, match=r"gld_cfg\['pos'\] must be one of"):
        MAFormer(**TINY_KW, gld_pos='learned')


def test_deprecated_flat_options_build_the_same_model_with_a_warning():
    flat = dict(gld_ratio=0.25, gld_resize='area', gld_pos='shared_interp', gld_init='trunc_normal',
                fusion_mode='concat_linear', fusion_ffn=True)
    nested = dict(gld_cfg=dict(ratio=0.25, resize='area', pos='shared_interp', init='trunc_normal'),
                  fusion_cfg=dict(mode='concat_linear', ffn=True))
    arch = dict(TINY, depths=[2, 2, 1, 1])
    models = []
    for options in (flat, nested):
        torch.manual_seed(0)
        if options is flat:
            with pytest.warns(FutureWarning) as record:
                models.append(MAFormer(arch=arch, pretrain_img_size=64, **options))
            messages = [str(w.message) for w in record if issubclass(w.category, FutureWarning)]
            assert len(messages) == 6 and "gld_ratio=0.25 is deprecated" in messages[0]
            assert "use gld_cfg=dict(ratio=0.25)" in messages[0]
        else:
            models.append(MAFormer(arch=arch, pretrain_img_size=64, **options))
        models[-1].eval()
    assert models[0].gld_cfg == models[1].gld_cfg and models[0].fusion_cfg == models[1].fusion_cfg
    flat_state, nested_state = models[0].state_dict(), models[1].state_dict()
    assert list(flat_state) == list(nested_state)
    assert all(torch.equal(flat_state[k], nested_state[k]) for k in flat_state)
    x = torch.randn(1, 3, 72, 80)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(models[0](x), models[1](x)))


def test_bad_inputs_are_named():
    check_bad_inputs_are_named(MAFormer(**TINY_KW))


# --- optional convolutional stem and CPE ---------------------------------------------------------------------------
def _expected_hw_conv_stem(height, width):
    hw = (-(-height // 4), -(-width // 4))  # two 3x3 s2 p1 convs: ceil-halving twice
    return [hw] + [(-(-hw[0] // 2**i), -(-hw[1] // 2**i)) for i in range(1, 4)]


@pytest.mark.parametrize('size', [(64, 64), (90, 90), (223, 225), (45, 91)])
def test_conv_stem_output_shapes_and_gld_grids(size):
    model = MAFormer(arch=TINY, pretrain_img_size=size, stem='conv', cpe=True)
    check_outputs(model, size, [16, 32, 64, 128], _expected_hw_conv_stem(*size))
    # GLD's reference grids are the stem's token grids at pretrain_img_size (then GLD is the plain token FC)
    grids = _expected_hw_conv_stem(*size)
    assert [model.stages[i].blocks[0].gld.ref_hw for i in (0, 1)] == grids[:2]


def test_conv_stem_layers_and_cpe_are_what_they_say():
    model = MAFormer(**TINY_KW, stem='conv', cpe=True).eval()
    stem = model.stem.conv
    assert [type(m).__name__ for m in stem] == ['Conv2d', 'BatchNorm2d', 'GELU', 'Conv2d']
    assert [(m.kernel_size, m.stride) for m in stem if isinstance(m, torch.nn.Conv2d)] == [((3, 3), (2, 2))] * 2
    assert stem[0].bias is None and stem[0].out_channels == 8  # C/2, no bias before the norm
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = F.conv2d(F.gelu(stem[1](F.conv2d(x, stem[0].weight, stride=2, padding=1))), stem[3].weight,
                            stem[3].bias, stride=2, padding=1)
        expected = F.layer_norm(expected.permute(0, 2, 3, 1), (16, ), model.stem.norm.weight,
                                model.stem.norm.bias).flatten(1, 2)
        tokens, hw = model.stem(x)
        assert hw == (16, 16) and torch.allclose(tokens, expected, atol=1e-5)
        block = model.stages[0].blocks[0]
        torch.nn.init.normal_(block.cpe.weight)
        tokens = torch.randn(2, 16 * 24, 16)
        depthwise = F.conv2d(tokens.transpose(1, 2).reshape(2, 16, 16, 24), block.cpe.weight, block.cpe.bias,
                             padding=1, groups=16)
        assert torch.allclose(block.cpe(tokens, (16, 24)), tokens + depthwise.flatten(2).transpose(1, 2), atol=1e-5)
    names = {n for n, _ in model.named_parameters()}
    assert {'stages.0.blocks.0.cpe.weight', 'stages.3.blocks.0.cpe.weight'} <= names  # MAF and global blocks
    assert not any('.cpe.' in n for n, _ in MAFormer(**TINY_KW).named_parameters())  # off by default


def test_conv_stem_norm_eval_and_frozen_stem():
    model = MAFormer(**TINY_KW, stem='conv', norm_eval=True).train()
    assert not model.stem.conv[1].training and model.stages[0].training
    check_frozen_stages(MAFormer(**TINY_KW, stem='conv', frozen_stages=1), 1, output_norm_prefix='out_norms.{}.',
                        lr=1.0)


def test_gld_converts_between_sizes_on_the_conv_stem_grids(tmp_path):
    # 94 px: the conv stem gives 24x24 tokens, CSWin's k7 stem 23x23 - the converter must use the model's stem
    source = MAFormer(**TINY_KW, stem='conv')
    state = dict(source.state_dict())
    resize_gld_checkpoint(state, 64, 94, stem='conv')
    target = MAFormer(arch=TINY, pretrain_img_size=94, stem='conv')
    target.load_state_dict(state, strict=True)
    assert target.stages[0].blocks[0].gld.ref_hw == (24, 24)
    path = _save({'backbone.' + k: v for k, v in source.state_dict().items()}, tmp_path / 'conv64.pth')
    loaded = MAFormer(arch=TINY, pretrain_img_size=94, stem='conv',
                      init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    loaded.init_weights()
    for key, value in loaded.state_dict().items():
        assert torch.allclose(value, state[key]), key
    with pytest.raises(ValueError, match='stem must be one of'):
        resize_gld_checkpoint(dict(source.state_dict()), 64, 94, stem='k7')


# --- GLD resolution converter -------------------------------------------------------------------------------------
def _smooth_token_fc(ref, global_hw, seed=0):
    """A token-FC whose weights vary smoothly over both grids (a learned GLD looks like this; white noise does not
    survive any resampling)."""
    gen = torch.Generator().manual_seed(seed)
    phase = torch.rand(4, generator=gen) * 2 * math.pi
    gy, gx, y, x = torch.meshgrid(*(torch.linspace(0, 1, n) for n in (*global_hw, *ref)), indexing='ij')
    weight = torch.cos(2 * math.pi * (y - gy) + phase[0]) * torch.cos(1.5 * math.pi * (x - gx) + phase[1])
    weight = (weight + 0.3 * torch.sin(math.pi * gx + phase[2])) / (ref[0] * ref[1])
    bias = torch.sin(3 * torch.linspace(0, 1, global_hw[0] * global_hw[1]) + phase[3])
    return weight.reshape(global_hw[0] * global_hw[1], ref[0] * ref[1]), bias


def test_converter_round_trip_224_384_224():
    weight, bias = _smooth_token_fc((56, 56), (28, 56))
    up_w, up_b = resize_token_fc(weight, bias, (56, 56), (96, 96), (28, 56), (48, 96))
    assert up_w.shape == (4608, 9216) and up_b.shape == (4608, )
    back_w, back_b = resize_token_fc(up_w, up_b, (96, 96), (56, 56), (48, 96), (28, 56))
    assert back_w.shape == weight.shape
    # bilinear up then anti-aliased bilinear down blurs by about a pixel: a few per cent on smooth weights
    assert (back_w - weight).norm() / weight.norm() < 0.03
    assert (back_b - bias).norm() / bias.norm() < 0.02
    # the row sums (the response to a constant image) are kept by the L0 rescaling
    assert torch.allclose(up_w.sum(1).reshape(48, 96)[::12, ::12],
                          F.interpolate(weight.sum(1).reshape(1, 1, 28, 56), size=(48, 96), mode='bilinear',
                                        align_corners=False)[0, 0, ::12, ::12], rtol=0.02, atol=1e-3)


def test_converted_gld_matches_the_original_run_at_the_new_size():
    """A GLD converted to 96x96 computes what the 56x56 GLD computes on a 96x96 map (resampled), on smooth input."""
    original = GlobalDownsampling(8, (56, 56))
    weight, bias = _smooth_token_fc((56, 56), (28, 56), seed=1)
    original.token_fc.weight.data.copy_(weight)
    original.token_fc.bias.data.copy_(bias)
    converted = GlobalDownsampling(8, (96, 96))
    converted.load_state_dict(original.state_dict())  # converts on load
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 96), indexing='ij')
    image = torch.stack([torch.sin(3 * yy + c) * torch.cos(2 * xx - c) for c in range(8)], -1).reshape(1, -1, 8)
    with torch.no_grad():
        old = (original(image, (96, 96)) - original.pos_embed).reshape(1, 28, 56, 8).permute(0, 3, 1, 2)
        new = (converted(image, (96, 96)) - converted.pos_embed).reshape(1, 48, 96, 8).permute(0, 3, 1, 2)
    old_on_new_grid = F.interpolate(old, size=(48, 96), mode='bilinear', align_corners=False)
    assert (old_on_new_grid - new).norm() / new.norm() < 1e-3
    pos = F.interpolate(original.pos_embed.reshape(1, 28, 56, 8).permute(0, 3, 1, 2), size=(48, 96),
                        mode='bilinear', align_corners=False)
    assert torch.allclose(converted.pos_embed, pos.flatten(2).transpose(1, 2), atol=1e-6)


def _save(state_dict, path):
    torch.save({'state_dict': state_dict, 'meta': {}}, path)
    return str(path)


def test_pretrained_init_cfg_converts_gld_of_another_resolution(tmp_path):
    source = MAFormer(**TINY_KW, out_indices=(3, ))
    classifier = {'backbone.' + k: v for k, v in source.state_dict().items()}
    classifier['head.fc.weight'] = torch.zeros(10, 128)
    path = _save(classifier, tmp_path / 'cls.pth')
    model = MAFormer(arch=TINY, pretrain_img_size=96,
                     init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    model.init_weights()
    state = model.state_dict()
    assert state['stages.0.blocks.0.gld.token_fc.weight'].shape == (288, 576)  # 24x24 reference grid
    expected, _ = resize_token_fc(source.state_dict()['stages.0.blocks.0.gld.token_fc.weight'], None,
                                  (16, 16), (24, 24), (8, 16), (12, 24))
    assert torch.allclose(state['stages.0.blocks.0.gld.token_fc.weight'], expected)
    for key in ('stages.2.blocks.0.attn.qkv.weight', 'out_norms.3.weight'):
        assert torch.equal(state[key], source.state_dict()[key])


def test_mmengine_load_checkpoint_converts_gld_too(tmp_path):
    """The path of the runner's `load_from` (mmengine's non-strict load_checkpoint) converts instead of skipping."""
    from mmengine.runner.checkpoint import load_checkpoint
    source = MAFormer(**TINY_KW)
    path = _save(source.state_dict(), tmp_path / 'at64.pth')
    target = MAFormer(arch=TINY, pretrain_img_size=96)
    load_checkpoint(target, path, strict=True)
    convert = dict(source.state_dict())
    resize_gld_checkpoint(convert, 64, 96)
    for key, value in target.state_dict().items():
        assert torch.allclose(value, convert[key]), key
    assert target.state_dict()['stages.1.blocks.0.gld.pos_embed'].shape == (1, 72, 32)  # 12x12 grid -> 6x12


def test_gld_of_another_ratio_is_refused_by_name(tmp_path):
    path = _save(MAFormer(**TINY_KW, gld_cfg=dict(ratio=0.25)).state_dict(), tmp_path / 'quarter.pth')
    model = MAFormer(arch=TINY, pretrain_img_size=96, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match=r'stages\.0\.blocks\.0\.gld\.token_fc\.weight.*gld_ratio differs'):
        model.init_weights()
    with pytest.raises(ValueError, match='gld_ratio differs'):
        MAFormer(**TINY_KW).load_state_dict(MAFormer(**TINY_KW, gld_cfg=dict(ratio=0.25)).state_dict())


def test_checkpoint_without_gld_weights_is_refused(tmp_path):
    state = {k: v for k, v in MAFormer(**TINY_KW).state_dict().items() if '.gld.' not in k}
    model = MAFormer(**TINY_KW, init_cfg=dict(type='Pretrained', checkpoint=_save(state, tmp_path / 'no_gld.pth')))
    with pytest.raises(KeyError, match=r'missing keys.*gld\.token_fc'):
        model.init_weights()


def test_shared_interp_embedding_converts_too():
    source = MAFormer(**TINY_KW, gld_cfg=dict(pos='shared_interp'))
    state = source.state_dict()
    converted = resize_gld_checkpoint(dict(state), 64, 96)
    target = MAFormer(arch=TINY, pretrain_img_size=96, gld_cfg=dict(pos='shared_interp'))
    target.load_state_dict(source.state_dict())  # converts on load
    assert tuple(target.stages[0].pos_embed.shape) == (1, 16, 12, 24)
    assert 'stages.0.pos_embed' in converted and 'stages.1.blocks.0.gld.token_fc.weight' in converted


def _run_tool(*args):
    return subprocess.run([sys.executable, 'tools/model_converters/maformer_resize_gld.py', *args], cwd=REPO,
                          capture_output=True, text=True)


def test_resize_tool_writes_a_checkpoint_that_loads_strictly(tmp_path):
    source = MAFormer(arch=TINY, pretrain_img_size=(64, 96))
    src = _save({'backbone.' + k: v for k, v in source.state_dict().items()}, tmp_path / 'src.pth')
    dst = tmp_path / 'dst.pth'
    result = _run_tool(src, str(dst), '--src-size', '64', '96', '--dst-size', '96', '128')
    assert result.returncode == 0, result.stderr
    assert 'resized 6 GLD tensors' in result.stdout
    target = MAFormer(arch=TINY, pretrain_img_size=(96, 128))
    state = {k[len('backbone.'):]: v for k, v in torch.load(dst)['state_dict'].items()}
    assert state['stages.0.blocks.0.gld.token_fc.weight'].shape == (384, 768)  # 24x32 grid -> 12x32 global
    target.load_state_dict(state, strict=True)

    result = _run_tool(src, str(tmp_path / 'bad.pth'), '--src-size', '64', '96', '--dst-size', '96', '128',
                       '--gld-ratio', '0.3')
    assert result.returncode != 0 and 'gld_ratio differs' in result.stderr
    assert not (tmp_path / 'bad.pth').exists()


# --- equivalence with an independent functional forward (written from the spec equations) -----------------------
def _ln(x, sd, key):
    return F.layer_norm(x, x.shape[-1:], sd[key + '.weight'], sd[key + '.bias'])


def _lin(x, sd, key):
    return x @ sd[key + '.weight'].t() + sd[key + '.bias']


def _attention(q, k, v, heads, bias=None):
    """Explicit softmax(Q K^T / sqrt(d) + bias) V, heads split as contiguous channel groups."""
    d = q.shape[-1] // heads
    outs = []
    for h in range(heads):
        part = slice(h * d, (h + 1) * d)
        scores = q[..., part] @ k[..., part].transpose(-1, -2) / math.sqrt(d)
        if bias is not None:
            scores = scores + bias[h]
        outs.append(scores.softmax(-1) @ v[..., part])
    return torch.cat(outs, -1)


def _window_attention(x, hw, sd, key, heads, w, shift):
    """Windows as a mask over the whole (padded) map: tokens attend iff their shifted window indices agree, which is
    Swin's masked cyclic shift without the roll; the bias is looked up from the tokens' relative offsets."""
    batch, _, channels = x.shape
    height, width = hw
    ph, pw = -(-height // w) * w, -(-width // w) * w
    fmap = F.pad(x.reshape(batch, height, width, channels), (0, 0, 0, pw - width, 0, ph - height))
    tokens = fmap.reshape(batch, ph * pw, channels)
    ys, xs = torch.meshgrid(torch.arange(ph), torch.arange(pw), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    # after a cyclic shift by -s the windows start at rows/cols -s, w - s, ...; the wrapped part is its own group
    window_row = torch.div(ys - shift, w, rounding_mode='floor') + 1
    window_col = torch.div(xs - shift, w, rounding_mode='floor') + 1
    window = window_row * (pw + w) + window_col
    same = window[:, None] == window[None, :]
    dy, dx = ys[:, None] - ys[None, :], xs[:, None] - xs[None, :]
    table = sd[key + '.relative_position_bias_table']
    index = ((dy + w - 1).clamp(0, 2 * w - 2) * (2 * w - 1) + (dx + w - 1).clamp(0, 2 * w - 2))
    bias = table[index].permute(2, 0, 1).masked_fill(~same, float('-inf'))
    q, k, v = _lin(tokens, sd, key + '.qkv').chunk(3, -1)
    out = _lin(_attention(q, k, v, heads, bias), sd, key + '.proj')
    return out.reshape(batch, ph, pw, channels)[:, :height, :width].reshape(batch, height * width, channels)


def _mlp(x, sd, key):
    return _lin(F.gelu(_lin(x, sd, key + '.layers.0.0')), sd, key + '.layers.1')


def _reference_forward(sd, x, heads, maf_stages, ref_grids, w, shift_windows):
    out = F.conv2d(x, sd['stem.conv.weight'], sd['stem.conv.bias'], stride=4, padding=2)
    hw = out.shape[-2:]
    tokens = _ln(out.flatten(2).transpose(1, 2), sd, 'stem.norm')
    outs = []
    for s in range(4):
        if s > 0:
            fmap = tokens.transpose(1, 2).reshape(x.shape[0], -1, *hw)
            fmap = F.conv2d(fmap, sd[f'stages.{s}.downsample.conv.weight'], sd[f'stages.{s}.downsample.conv.bias'],
                            stride=2, padding=1)
            hw = fmap.shape[-2:]
            tokens = _ln(fmap.flatten(2).transpose(1, 2), sd, f'stages.{s}.downsample.norm')
        b = 0
        while f'stages.{s}.blocks.{b}.norm1.weight' in sd:
            key = f'stages.{s}.blocks.{b}'
            if s in maf_stages:
                shift = w // 2 if shift_windows and b % 2 else 0
                local = tokens + _window_attention(_ln(tokens, sd, key + '.norm1'), hw, sd, key + '.attn',
                                                   heads[s], w, shift)
                local = local + _mlp(_ln(local, sd, key + '.norm2'), sd, key + '.ffn')
                # GLD: FC over the token axis of the channel-first normalised input, then Pos
                g_in = _ln(tokens, sd, key + '.norm_gld').transpose(1, 2)
                if tuple(hw) != ref_grids[s]:
                    g_in = F.interpolate(g_in.reshape(*g_in.shape[:2], *hw), size=ref_grids[s], mode='bilinear',
                                         align_corners=False, antialias=True).flatten(2)
                glob = (g_in @ sd[key + '.gld.token_fc.weight'].t() + sd[key + '.gld.token_fc.bias']).transpose(1, 2)
                glob = _ln(glob + sd[key + '.gld.pos_embed'], sd, key + '.fusion.norm_kv')
                q = _lin(_ln(local, sd, key + '.fusion.norm_q'), sd, key + '.fusion.q')
                fused = _attention(q, _lin(glob, sd, key + '.fusion.k'), _lin(glob, sd, key + '.fusion.v'), heads[s])
                tokens = local + _lin(fused, sd, key + '.fusion.proj')
            else:
                normed = _ln(tokens, sd, key + '.norm1')
                q, k, v = _lin(normed, sd, key + '.attn.qkv').chunk(3, -1)
                v_map = v.transpose(1, 2).reshape(v.shape[0], -1, *hw)
                lepe = F.conv2d(v_map, sd[key + '.attn.lepe.weight'], sd[key + '.attn.lepe.bias'], padding=1,
                                groups=v_map.shape[1])
                attn = _attention(q, k, v, heads[s]) + lepe.flatten(2).transpose(1, 2)
                tokens = tokens + _lin(attn, sd, key + '.attn.proj')
                tokens = tokens + _mlp(_ln(tokens, sd, key + '.norm2'), sd, key + '.ffn')
            b += 1
        outs.append(_ln(tokens, sd, f'out_norms.{s}').transpose(1, 2).reshape(x.shape[0], -1, *hw))
    return outs


def _randomise(model, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen, dtype=param.dtype)
            is_norm_scale = 'norm' in name and name.endswith('.weight')
            param.copy_(1 + 0.2 * noise if is_norm_scale else 0.3 * noise)


@pytest.mark.parametrize('size, shift', [((64, 64), False), ((92, 76), False), ((64, 84), True)])
def test_equivalent_to_functional_reference_float64(size, shift):
    arch = dict(TINY, depths=[2, 2, 1, 1])
    model = MAFormer(arch=arch, pretrain_img_size=64, shift_windows=shift).double().eval()
    _randomise(model, seed=sum(size))
    sd = model.state_dict()
    x = torch.randn(2, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(x)
        theirs = _reference_forward(sd, x, TINY['num_heads'], (0, 1), {0: (16, 16), 1: (8, 8)}, 7, shift)
    assert max(o.abs().max().item() for o in theirs) > 0.5  # not a trivially small comparison
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-10, rtol=0)
