"""GLNet backbone: variants, sizes and FLOPs, input sizes, gradients, freezing, checkpointing, autocast, the
GLMix block's clustering, equivalence with the official architecture and the official-checkpoint converter."""
import importlib.util
import os
import sys

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath

from mixformer_mm.converters.glnet import convert_glnet, convert_glnet_checkpoint, select_weights
from mixformer_mm.models.backbones import GLNet
from mixformer_mm.models.backbones.glnet import GLMixBlock, MHSABlock
from tests.backbone_checks import (DETECTION_HW, DETECTION_SIZE, check_bad_inputs_are_named, check_frozen_stages,
                                   check_gradients_reach_every_parameter, check_norm_eval_keeps_bn_statistics,
                                   check_outputs, check_with_cp_matches_plain, randomise_bn_statistics, strided_hw)
from tests.config_checks import load_script
from tests.reference import glnet_functional as reference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tiny archs with every feature of the advanced (4G/9G/16G) and the STL layouts, for behavioural tests.
TINY = dict(embed_dims=[32, 32, 64, 64], depths=[1, 2, 2, 1], mlp_ratio=2, downsample='overlap',
            mixing=['glmix', 'glmix', 'glmix_mhsa', 'mhsa'], cpe=True, ffn_dwconv=True, layer_scale=1e-4)
TINY_STL = dict(embed_dims=[32, 32, 64, 64], depths=[1, 1, 2, 1], mlp_ratio=2, downsample='non_overlap',
                mixing=['glmix', 'glmix', 'glmix', 'mhsa_tokens'], slot_init='param', layer_scale=1e-4)

# Spec section 4: exact parameter counts with the 1000-class head, and without norm and head.
IMAGENET_PARAMS = {'stl': 30_296_786, 'stl_paramslot': 30_481_106, '4g': 27_001_593, '9g': 60_010_617,
                   '16g': 106_055_161}
BACKBONE_PARAMS = {'stl': 29_526_250, '4g': 26_487_569, '9g': 59_240_081, '16g': 105_028_113}
OFFICIAL_KEY_COUNTS = {'glnet_stl': 249, 'glnet_stl_paramslot': 259, 'glnet_4g': 641, 'glnet_9g': 641,
                       'glnet_16g': 701}
# FLOPs (G multiply-adds) at 224: the official model's count with the attention products (spec section 4) and the
# paper's rounded figures.
OFFICIAL_FLOPS = {'stl': 4.365, 'stl-paramslot': 4.363, '4g': 4.507, '9g': 9.626, '16g': 16.655}
PAPER_FLOPS = {'stl': 4.4, 'stl-paramslot': 4.4, '4g': 4.5, '9g': 9.7, '16g': 16.7}


def _official_cfg(arch: dict) -> dict:
    """A tiny arch of ours in the reference's (official) vocabulary."""
    mixing = {'glmix': 'glmix', 'glmix_mhsa': 'glmix.mha_nchw', 'mhsa': 'mha_nchw', 'mhsa_tokens': 'mha'}
    return dict(depths=arch['depths'], widths=arch['embed_dims'], mlp_ratio=arch['mlp_ratio'],
                style='ovlp' if arch['downsample'] == 'overlap' else 'non_ovlp',
                mixing=[mixing[m] for m in arch['mixing']], cpe=arch.get('cpe', False),
                mlp_dw=arch.get('ffn_dwconv', False), layerscale=arch.get('layer_scale', 0.),
                slot_init='param' if arch.get('slot_init') == 'param' else 'ada_avgpool')


# --- variants, sizes and costs --------------------------------------------------------------------------------
@pytest.mark.parametrize('arch', list(IMAGENET_PARAMS))
def test_param_counts_equal_the_official_model(arch):
    model = GLNet(arch=arch, final_norm=True, extra_norms=False, out_indices=(3, ))
    total = sum(p.numel() for p in model.parameters()) + model.embed_dims[-1] * 1000 + 1000  # + Linear head
    assert total == IMAGENET_PARAMS[arch]
    if arch in BACKBONE_PARAMS:
        backbone = sum(p.numel() for p in model.parameters()) - 2 * model.embed_dims[-1]  # without final BN
        assert backbone == BACKBONE_PARAMS[arch]


@pytest.fixture(scope='module')
def get_flops():
    return load_script('tools/analysis_tools/get_flops.py', 'get_flops')


@pytest.mark.parametrize('arch', ['stl', '4g', '9g', '16g'])
def test_params_and_flops_of_the_imagenet_configs(arch, get_flops):
    from mixformer_mm.engine import load_config
    configs = [f for f in os.listdir(os.path.join(REPO, 'configs/glnet')) if f.startswith(f'glnet-{arch}_')
               and f.endswith('_in1k.py')]
    assert len(configs) == 1, configs
    cfg = load_config(os.path.join(REPO, 'configs/glnet', configs[0]))
    params, flops = get_flops.count(cfg, (224, 224))
    assert params == IMAGENET_PARAMS[arch]
    assert flops / 1e9 == pytest.approx(OFFICIAL_FLOPS[arch], abs=0.0005)
    assert flops / 1e9 == pytest.approx(PAPER_FLOPS[arch], rel=0.01)


def test_flops_count_the_slot_attention_and_clustering_products():
    """Spec section 3.1, per GLMix block: clustering logits, aggregation and dispatch 3*S*N*C; slot MHSA
    4*S*C^2 + 2*S^2*C (the SDPA products included); local branch 2*N*C^2 + 25*N*C; FFN 2*r*N*C^2 + 9*r*N*C."""
    from mixformer_mm.utils.flops import count_flops
    block = GLMixBlock(64, mlp_ratio=3, use_cpe=True, ffn_dwconv=True).eval()
    S, N, C, r = 64, 56 * 56, 64, 3
    expected = (3 * S * N * C + 4 * S * C * C + 2 * S * S * C + 2 * N * C * C + 25 * N * C
                + 2 * r * N * C * C + 9 * r * N * C
                + 9 * N * C  # CPE
                + 2 * 5 * N * C + N * C)  # fvcore's flat prices of the two LayerNorms and the adaptive pooling
    assert count_flops(block, (torch.randn(1, C, 56, 56), )) == expected


@pytest.mark.parametrize('arch', [TINY, TINY_STL], ids=['advanced', 'stl'])
@pytest.mark.parametrize('size', [(224, 224), (223, 225), (64, 96)])
def test_output_shapes_any_size(arch, size):
    # padded 3x3 stride-2 convs round up; the official patchify convs (non_overlap) floor
    expected_hw = strided_hw(size, round_up=arch['downsample'] == 'overlap')
    check_outputs(GLNet(arch=arch), size, arch['embed_dims'], expected_hw)


def test_detection_size_800x1333_batch1():
    check_outputs(GLNet(arch=TINY), DETECTION_SIZE, TINY['embed_dims'], DETECTION_HW)


def test_out_indices_extra_norms_and_final_norm():
    model = GLNet(arch=TINY, out_indices=(1, 3)).eval()
    assert sorted(model.extra_norms.keys()) == ['1', '3']
    outs = model(torch.randn(2, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 64]
    # the extra norms are LayerNorms over channels (eps 1e-6) of the stage outputs
    plain = GLNet(arch=TINY, out_indices=(1, 3), extra_norms=False).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    x = torch.randn(2, 3, 64, 64)
    for normed, raw in zip(model(x), plain(x)):
        expected = F.layer_norm(raw.permute(0, 2, 3, 1), raw.shape[1:2], eps=1e-6).permute(0, 3, 1, 2)
        assert torch.allclose(normed, expected, atol=1e-5)
    classifier = GLNet(arch=TINY, out_indices=-1, final_norm=True, extra_norms=False).eval()
    randomise_bn_statistics(classifier)
    plain = GLNet(arch=TINY, out_indices=-1, extra_norms=False).eval()
    plain.load_state_dict(classifier.state_dict(), strict=False)
    assert torch.allclose(classifier(x)[0], classifier.final_norm(plain(x)[0]), atol=1e-6)
    with pytest.raises(ValueError, match='exclude each other'):
        GLNet(arch=TINY, final_norm=True)
    with pytest.raises(IndexError, match='out_indices'):
        GLNet(arch=TINY, out_indices=(4, ))


@pytest.mark.parametrize('arch', [TINY, TINY_STL], ids=['advanced', 'stl'])
def test_gradients_reach_every_parameter(arch):
    model = GLNet(arch=arch, drop_path_rate=0.1)
    model.init_weights()
    check_gradients_reach_every_parameter(model)


@pytest.mark.parametrize('frozen_stages', [0, 2, 4])
def test_frozen_stages_freeze_weights_and_bn_statistics(frozen_stages):
    # frozen_stages=4 freezes everything, extra norms included
    check_frozen_stages(GLNet(arch=TINY, frozen_stages=frozen_stages), frozen_stages,
                        output_norm_prefix='extra_norms.{}.')


def test_norm_eval_keeps_bn_statistics():
    bns = check_norm_eval_keeps_bn_statistics(GLNet(arch=TINY, norm_eval=True))
    assert len(bns) == 5  # stem (2) and three downsampling layers


@pytest.mark.parametrize('arch', [TINY, TINY_STL], ids=['advanced', 'stl'])
def test_with_cp_same_outputs_and_gradients(arch):
    check_with_cp_matches_plain(lambda with_cp: GLNet(arch=arch, drop_path_rate=0.2, with_cp=with_cp))


def test_bf16_autocast_cpu():
    model = GLNet(arch=TINY).train()
    x = torch.randn(2, 3, 64, 64)
    reference_outs = model(x)
    dtypes = {}
    for name in ('stages.0.blocks.0.slot_attn.qkv', 'stages.0.blocks.0.local_branch.dw', 'stages.3.blocks.0.attn.proj'):
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: dtypes.__setitem__(name, o.dtype))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
    assert set(dtypes.values()) == {torch.bfloat16}  # the matmuls and convs run in bf16
    # (LayerNorm runs in float32 under autocast, so the extra norms return float32)
    for out, ref in zip(outs, reference_outs):
        assert torch.isfinite(out).all()
        assert (out.float() - ref).abs().mean() < 0.1 * ref.abs().mean()
    sum(o.float().mean() for o in outs).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg'])
def test_registered_in_every_scope(scope):
    from mmengine.registry import DefaultScope
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(dict(type='GLNet', arch=TINY, out_indices=(3, )))
    assert isinstance(model, GLNet)


# --- variant structure and the GLMix block ---------------------------------------------------------------------
def test_variant_structure():
    model = GLNet(arch='4g', drop_path_rate=0.15)
    stage2 = [type(b) for b in model.stages[2].blocks]
    assert stage2 == [GLMixBlock, MHSABlock] * 9  # the hybrid stage starts with GLMix
    assert all(isinstance(b, GLMixBlock) for s in model.stages[:2] for b in s.blocks)
    assert all(isinstance(b, MHSABlock) for b in model.stages[3].blocks)
    blocks = [b for s in model.stages for b in s.blocks]
    assert isinstance(blocks[0].drop_path, torch.nn.Identity)  # rate 0: no DropPath at all
    assert isinstance(blocks[-1].drop_path, DropPath) and blocks[-1].drop_path.drop_prob == pytest.approx(0.15)
    assert blocks[1].drop_path.drop_prob == pytest.approx(0.15 / 29)
    assert [b.attn.num_heads for b in model.stages[3].blocks] == [16] * 4  # head width 32
    big = GLNet(arch='16g')
    assert big.stages[0].blocks[0].ls1.weight.shape == (128, ) and big.stages[0].blocks[0].ls1.weight[0] == 1e-4
    assert GLNet(arch='16g', layer_scale_init_value=0).stages[0].blocks[0].ls1.__class__ is torch.nn.Identity
    stl = GLNet(arch='stl')
    assert stl.stages[0].blocks[0].cpe is None and isinstance(stl.stages[0].blocks[0].ffn.dwconv, torch.nn.Identity)
    assert stl.stages[0].blocks[0].slot_scale.item() == pytest.approx(96**-0.5)


def _probe(block):
    seen = {}
    block.cluster_probe.register_forward_hook(lambda m, i, o: seen.__setitem__('clustering', o))
    block.dispatch_probe.register_forward_hook(lambda m, i, o: seen.__setitem__('dispatch', o))
    return seen


@pytest.mark.parametrize('size', [(14, 14), (7, 9), (16, 16)])
def test_clustering_sums_to_one_over_pixels_and_dispatch_over_slots(size):
    block = GLMixBlock(32, mlp_ratio=2, use_cpe=True).eval()
    with torch.no_grad():
        block.slot_scale.fill_(5.0)
    seen = _probe(block)
    with torch.no_grad():
        block(torch.randn(2, 32, *size))
    n = size[0] * size[1]
    assert seen['clustering'].shape == (2, 64, n) and seen['dispatch'].shape == (2, n, 64)
    assert torch.allclose(seen['clustering'].sum(-1), torch.ones(2, 64), atol=1e-5)
    assert torch.allclose(seen['dispatch'].sum(-1), torch.ones(2, n), atol=1e-5)
    # one logits matrix, two softmax axes: clustering and dispatch have proportional exponentials
    logits_a = seen['clustering'].log()
    logits_b = seen['dispatch'].transpose(1, 2).log()
    diff = logits_a - logits_b  # = per-pixel constant - per-slot constant
    centred = diff - diff.mean(dim=1, keepdim=True) - diff.mean(dim=2, keepdim=True) + diff.mean(dim=(1, 2),
                                                                                                 keepdim=True)
    assert centred.abs().max() < 1e-4


@pytest.mark.parametrize('size', [(14, 14), (7, 7), (5, 12), (16, 24)])
def test_slots_pool_the_raw_block_input_with_pytorch_bins(size):
    """8x8 adaptive pooling of the input before CPE and norm: overlapping bins for 14, repeated pixels below 8."""
    block = GLMixBlock(32, mlp_ratio=2, use_cpe=True).eval()
    x = torch.randn(2, 32, *size)
    assert torch.allclose(block.initial_slots(x), reference.adaptive_pool_8x8(x), atol=1e-6)
    captured = {}
    block.slot_attn.register_forward_pre_hook(lambda m, args: captured.__setitem__('slots_in', args[0]))
    with torch.no_grad():
        block(x)
        pixels = block.norm1(x + block.cpe(x)).flatten(2).transpose(1, 2)
        logits = block.similarity_logits(reference.adaptive_pool_8x8(x), pixels)
    assert torch.allclose(captured['slots_in'], logits.softmax(-1) @ pixels, atol=1e-5)


def test_param_slots_are_shared_across_images():
    block = GLMixBlock(32, mlp_ratio=2, slot_init='param')
    assert block.init_slots.shape == (1, 64, 32)
    assert torch.equal(block.initial_slots(torch.randn(3, 32, 8, 8))[2], block.init_slots[0])


def test_from_scratch_initialisation():
    model = GLNet(arch=TINY)
    model.init_weights()
    block = model.stages[0].blocks[0]
    assert torch.all(block.slot_attn.qkv.bias == 0) and torch.all(block.slot_attn.proj.bias == 0)
    bound = (6 / (4 * 32))**0.5  # xavier-uniform of the fused (3C, C) projection, as nn.MultiheadAttention
    assert block.slot_attn.qkv.weight.abs().max() <= bound and block.slot_attn.qkv.weight.std() > bound / 3
    assert block.slot_attn.proj.weight.std().item() == pytest.approx(0.02, rel=0.2)
    assert torch.all(block.norm1.weight == 1) and torch.all(model.extra_norms['0'].weight == 1)


# --- equivalence with the official architecture --------------------------------------------------------------
def _converted_model(arch, official, **kwargs):
    converted = convert_glnet(official)
    model = GLNet(arch=arch, final_norm=True, extra_norms=False, **kwargs).eval()
    backbone = {k[len('backbone.'):]: v for k, v in converted.items() if k.startswith('backbone.')}
    model.load_state_dict(backbone, strict=True)
    return converted, model


def _logits(model, converted, x):
    return F.linear(model(x)[-1].mean(dim=(2, 3)), converted['head.fc.weight'], converted['head.fc.bias'])


@pytest.mark.parametrize('arch', ['stl', '4g'])
def test_equivalent_to_official_architecture_fp32_224(arch):
    cfg = reference.OFFICIAL_ARCHS[f'glnet_{arch}']
    official = reference.synthesize_official_state_dict(cfg, seed=3, dtype=torch.float32)
    converted, model = _converted_model(arch, official, out_indices=(0, 1, 2, 3))
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model(x)
        theirs = reference.forward_features(official, x, cfg)
        theirs_logits = reference.forward_logits(official, x, cfg)
        ours_logits = _logits(model, converted, x)
    for a, b in zip(ours[:3], theirs[:3]):
        assert (a - b).abs().max() <= 1e-4 * max(1., b.abs().max())
    assert theirs_logits.abs().max() > 1  # not a trivially small comparison
    assert (ours_logits - theirs_logits).abs().max() <= 1e-4


@pytest.mark.parametrize('arch', [TINY, TINY_STL], ids=['advanced+layerscale', 'stl+paramslot+layerscale'])
@pytest.mark.parametrize('size', [(224, 224), (223, 225), (96, 160)])
def test_equivalent_to_official_architecture_fp64_any_size(arch, size):
    cfg = _official_cfg(arch)
    official = reference.synthesize_official_state_dict(cfg, seed=5, dtype=torch.float64)
    converted, model = _converted_model(arch, official, out_indices=(0, 1, 2, 3))
    model.double()
    x = torch.randn(2, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = reference.forward_features(official, x, cfg)
        theirs[-1] = reference._bn(theirs[-1], official, 'norm.')  # our model here has final_norm=True
        for a, b in zip(model(x), theirs):
            assert torch.allclose(a, b, atol=1e-10, rtol=1e-10)


# --- converter --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', list(OFFICIAL_KEY_COUNTS))
def test_official_layout_converts_to_every_variant(name):
    arch = name[len('glnet_'):]
    shapes = reference.official_state_dict_shapes(reference.OFFICIAL_ARCHS[name])
    assert len(shapes) == OFFICIAL_KEY_COUNTS[name]
    official = {k: torch.zeros(s) for k, s in shapes.items()}
    converted = convert_glnet(official)
    expected = GLNet(arch=arch, final_norm=True, extra_norms=False).state_dict()
    backbone = {k[len('backbone.'):]: v.shape for k, v in converted.items() if k.startswith('backbone.')}
    assert backbone == {k: v.shape for k, v in expected.items()}
    assert set(converted) - {f'backbone.{k}' for k in expected} == {'head.fc.weight', 'head.fc.bias'}


def test_16g_converts_the_ema_weights_by_default():
    cfg = dict(reference.OFFICIAL_ARCHS['glnet_16g'], depths=[1, 1, 2, 1])  # 16G widths, fewer blocks
    checkpoint = reference.synthesize_official_checkpoint(cfg, seed=0)
    assert select_weights(checkpoint) is checkpoint['model_ema']
    assert select_weights(checkpoint, 'model') is checkpoint['model']
    small = reference.synthesize_official_checkpoint(reference.OFFICIAL_ARCHS['glnet_stl'], seed=0)
    assert select_weights(small) is small['model']
    assert select_weights(small['model']) is small['model']  # a bare state_dict
    with pytest.raises(KeyError, match='model_ema'):
        select_weights(small['model'], 'model_ema')
    converted = convert_glnet_checkpoint(checkpoint)
    key = 'backbone.stages.0.blocks.0.ls1.weight'
    assert torch.equal(converted[key], checkpoint['model_ema']['stages.0.blocks.0.ls1.gamma'].reshape(-1))


def test_converter_errors_name_the_problem():
    official = reference.synthesize_official_state_dict(_official_cfg(TINY), dtype=torch.float32)
    with pytest.raises(KeyError, match='stages.0.blocks.0.mystery'):
        convert_glnet(dict(official, **{'stages.0.blocks.0.mystery': torch.zeros(1)}))
    tklb = dict(official, **{'tklb_aux_head.weight': torch.zeros(1000, 64), 'tklb_aux_head.bias': torch.zeros(1000)})
    with pytest.raises(ValueError, match='token-labeling'):
        convert_glnet(tklb)
    assert 'head.fc.weight' in convert_glnet(tklb, drop_token_label_head=True)
    assert not any('tklb' in k or k.startswith('head') for k in convert_glnet(tklb, backbone_only=True))


@pytest.fixture(scope='module')
def converter_cli():
    """tools/model_converters/glnet2mmpretrain.py, imported (it imports its sibling _common)."""
    tools = os.path.join(REPO, 'tools/model_converters')
    sys.path.insert(0, tools)
    try:
        spec = importlib.util.spec_from_file_location('glnet2mmpretrain', os.path.join(tools, 'glnet2mmpretrain.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(tools)
    return module


@pytest.mark.parametrize('name', ['glnet_stl', 'glnet_4g'])
def test_converter_cli_and_pretrained_loading(name, tmp_path, converter_cli, capsys):
    from mmpretrain.models import ImageClassifier  # noqa: F401  (registers the classifier parts)
    from mmpretrain.registry import MODELS
    arch = name[len('glnet_'):]
    cfg = reference.OFFICIAL_ARCHS[name]
    checkpoint = reference.synthesize_official_checkpoint(cfg, seed=4)
    src = tmp_path / f'{name}.pth'
    torch.save(checkpoint, src)
    full, backbone_only = tmp_path / 'full.pth', tmp_path / 'backbone.pth'
    assert converter_cli.main([str(src), str(full)]) == 0
    assert f'GLNet-{arch.upper()}: ' in capsys.readouterr().out
    assert converter_cli.main([str(src), str(backbone_only), '--backbone-only']) == 0
    assert torch.load(full, weights_only=True)['meta']['weights'] == 'model'

    # the ImageNet classifier loads the full checkpoint strictly and gives the official logits
    classifier = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='GLNet', arch=arch, out_indices=(3, ), final_norm=True, extra_norms=False),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=cfg['widths'][-1]))).eval()
    classifier.load_state_dict(torch.load(full, weights_only=True)['state_dict'], strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ours = classifier(x, mode='tensor')
        theirs = reference.forward_logits(checkpoint['model'], x, cfg)
    assert (ours - theirs).abs().max() <= 1e-4

    # a dense backbone loads the backbone-only checkpoint; its extra norms are new by design
    dense = GLNet(arch=arch, init_cfg=dict(type='Pretrained', checkpoint=str(backbone_only)))
    dense.init_weights()
    assert torch.equal(dense.stages[1].downsample.conv.weight,
                       checkpoint['model']['downsample_layers.1.' + ('1' if arch == 'stl' else '0') + '.weight'])
    assert torch.all(dense.extra_norms['3'].weight == 1)
    # ... and with prefix from the full one
    prefixed = GLNet(arch=arch, init_cfg=dict(type='Pretrained', checkpoint=str(full), prefix='backbone.'))
    prefixed.init_weights()
    assert torch.equal(prefixed.stages[1].downsample.conv.weight, dense.stages[1].downsample.conv.weight)
    # the wrong variant is refused by name
    wrong = GLNet(arch='9g' if arch == '4g' else 'stl_paramslot',
                  init_cfg=dict(type='Pretrained', checkpoint=str(backbone_only)))
    with pytest.raises(KeyError, match='does not fit GLNet'):
        wrong.init_weights()


def test_converter_cli_errors(tmp_path, converter_cli):
    with pytest.raises(SystemExit, match='does not exist'):
        converter_cli.main([str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth')])
    src = tmp_path / 'odd.pth'
    torch.save({'model': {'stages.0.blocks.0.norm1.weight': torch.zeros(48)}}, src)
    with pytest.raises(SystemExit, match='fits no GLNet variant'):
        converter_cli.main([str(src), str(tmp_path / 'out.pth')])
    with pytest.raises(SystemExit, match='no .model_ema. weights'):
        converter_cli.main([str(src), str(tmp_path / 'out.pth'), '--weights', 'model_ema'])
    assert not (tmp_path / 'out.pth').exists()


# --- errors that name the problem -------------------------------------------------------------------------------
def test_unknown_arch_lists_valid_names():
    with pytest.raises(KeyError, match=r"unknown arch 'xl'.*'16g'.*'4g'.*'9g'.*'stl'"):
        GLNet(arch='xl')


def test_custom_arch_constraints():
    with pytest.raises(ValueError, match='not divisible by head_dims=32'):
        GLNet(arch=dict(TINY, embed_dims=[48, 32, 64, 64]))
    with pytest.raises(ValueError, match='unknown mixing mode'):
        GLNet(arch=dict(TINY, mixing=['glmix', 'glmix', 'swin', 'mhsa']))
    with pytest.raises(ValueError, match='not a perfect square'):
        GLNet(arch=dict(TINY, num_slots=50))
    with pytest.raises(ValueError, match="'non_overlap' or 'overlap'"):
        GLNet(arch=dict(TINY, downsample='conv'))
    with pytest.raises(KeyError, match='lacks'):
        GLNet(arch=dict(embed_dims=[32] * 4))


def test_bad_inputs_are_named():
    check_bad_inputs_are_named(GLNet(arch=TINY))


# --- slot visualisation ------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def vis_slots():
    return load_script('tools/visualization/vis_slots.py', 'vis_slots')


def _demo_image(path, size=(75, 101)):
    """A demo-style picture (drawn shapes on a noisy background, as mixformer_mm.datasets.demo_data), odd-sized."""
    import numpy as np
    from PIL import Image, ImageDraw

    from mixformer_mm.datasets.demo_data import shape_polygon
    rng = np.random.default_rng(0)
    height, width = size
    image = Image.fromarray((100 + 20 * rng.standard_normal((height, width, 3))).clip(0, 255).astype('uint8'))
    draw = ImageDraw.Draw(image)
    draw.polygon(shape_polygon('circle', 25, 30, 15, 0.), fill=(220, 40, 40))
    draw.polygon(shape_polygon('triangle', 70, 45, 20, 0.3), fill=(40, 200, 60))
    image.save(path)


def test_slot_visualiser_colours_follow_the_dispatch_argmax(tmp_path, vis_slots, capsys):
    import mmcv
    import numpy as np
    config = os.path.join(REPO, 'configs/demo/glnet-mini_demo_cls.py')
    model, _ = vis_slots.build_model(config)
    model.init_weights()
    for module in model.backbone.modules():
        if isinstance(module, GLMixBlock):
            module.slot_scale.data.fill_(20.)  # a trained-like, sharp assignment rather than a near-uniform one
    checkpoint = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    image_path, out = tmp_path / 'demo.png', tmp_path / 'slots.png'
    _demo_image(image_path)

    assert vis_slots.main([config, str(checkpoint), str(image_path), '--out', str(out), '--stage', '1']) == 0
    assert 'dispatched mostly to' in capsys.readouterr().out
    assert out.stat().st_size > 0
    canvas = mmcv.imread(str(out))
    image = mmcv.imread(str(image_path))
    height, width = image.shape[:2]
    assert canvas.shape == (height, 3 * width, 3)
    assert np.array_equal(canvas[:, :width], image)

    # expected: the argmax over slots of the block's similarity logits, recomputed from the block's input
    block = model.backbone.stages[1].blocks[0]
    captured = {}
    block.register_forward_pre_hook(lambda m, args: captured.__setitem__('x', args[0]))
    x = vis_slots.to_tensor(image, *vis_slots.build_model(config)[1])
    with torch.no_grad():
        model.backbone(x)
        block_input = captured['x']
        pixels = block.norm1(block_input + block.cpe(block_input)).flatten(2).transpose(1, 2)
        logits = block.similarity_logits(block.initial_slots(block_input), pixels)[0]  # (S, N)
    h, w = block_input.shape[-2:]
    assert (h, w) == (-(-height // 8), -(-width // 8))
    slot_ids = logits.argmax(dim=0).reshape(h, w).numpy()
    assert len(np.unique(slot_ids)) > 1
    rows = np.arange(height) * h // height
    cols = np.arange(width) * w // width
    expected = vis_slots.slot_palette(64)[slot_ids[rows][:, cols]]
    assert np.array_equal(canvas[:, 2 * width:], expected)


def test_slot_visualiser_errors(tmp_path, vis_slots):
    config = os.path.join(REPO, 'configs/demo/glnet-mini_demo_cls.py')
    model, _ = vis_slots.build_model(config)
    with pytest.raises(ValueError, match=r'not a GLMix block.*GLMix blocks are 0/0, 1/0, 2/0, 2/2'):
        vis_slots.glmix_block(model.backbone, 3, 0)
    with pytest.raises(SystemExit, match='does not exist'):
        vis_slots.main([config, str(tmp_path / 'none.pth'), str(tmp_path / 'none.png'), '--out', 'x.png'])
