"""Every DGT config (configs/dgt/) parses, dumps, declares its imports and pretrained weights, follows the spec's
(assumed) recipe, builds a model that runs, and the ImageNet models have the spec's params and FLOPs.

Models are built with the registry of the codebase named by the config's ``default_scope`` and run once, in eval
mode, on a tiny input.
"""
import functools
from pathlib import Path

import pytest

from tests.config_checks import (ROOT, arch_in_name, cached_model, check_dump_round_trip, check_imports_mixformer_mm,
                                 check_model_runs, check_weight_decay, config_id, load_config, load_script,
                                 pretrained_checkpoint)

CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs/dgt').glob('*.py'))

STAGE_CHANNELS = {'t': [64, 128, 256, 512], 's': [96, 192, 384, 768], 'b': [128, 256, 512, 1024]}
IN1K_DROP_PATH = {'t': 0.2, 's': 0.3, 'b': 0.5}
DENSE_DROP_PATH = {'t': 0.2, 's': 0.3, 'b': 0.4}
# spec section 5.2: our analytic params (M) and GMACs of the ImageNet models at 224x224
SPEC_COMPLEXITY = {'t': (21.8, 4.04), 's': (48.4, 8.78), 'b': (85.5, 15.33)}

EXPECTED_FILES = [f'configs/dgt/dgt-{a}_8xb128_in1k.py' for a in 'tsb'] + [
    f'configs/dgt/{name}' for a in 'tsb' for name in (
        f'mask-rcnn_dgt-{a}_fpn_1x_coco.py',
        f'mask-rcnn_dgt-{a}_fpn_ms-3x_coco.py',
        f'retinanet_dgt-{a}_fpn_1x_coco.py',
        f'upernet_dgt-{a}_8xb2-160k_ade20k-512x512.py',
        f'fpn_dgt-{a}_8xb2-80k_ade20k-512x512.py',
    )]
IN1K = [p for p in CONFIGS if p.endswith('_in1k.py')]
DENSE = [p for p in CONFIGS if p not in IN1K]


_id = functools.partial(config_id, prefix='configs/dgt/')


def _arch(path: str) -> str:
    return arch_in_name(path, r'dgt-([tsb])[_.]', 'DGT')


def test_expected_config_files_exist():
    assert sorted(EXPECTED_FILES) == CONFIGS


@pytest.mark.parametrize('path', CONFIGS, ids=_id)
def test_config_parses_declares_import_and_dumps(path, tmp_path):
    cfg = load_config(path)
    check_imports_mixformer_mm(cfg, path)
    assert cfg.model.backbone.type == 'DGT' and cfg.model.backbone.arch == _arch(path)
    check_dump_round_trip(cfg, path, tmp_path)


@pytest.mark.parametrize('path', IN1K, ids=_id)
def test_in1k_recipe_is_the_specs(path):
    cfg = load_config(path)
    arch = _arch(path)
    assert cfg.train_dataloader.batch_size == 128 and cfg.auto_scale_lr.base_batch_size == 1024  # 8 x 128
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW' and optimizer.lr == pytest.approx(1e-3 * 1024 / 1024)
    assert optimizer.weight_decay == 0.05 and tuple(optimizer.betas) == (0.9, 0.999)
    paramwise = cfg.optim_wrapper.paramwise_cfg
    assert paramwise.norm_decay_mult == 0 and paramwise.bias_decay_mult == 0 and paramwise.flat_decay_mult == 0
    assert 'custom_keys' not in paramwise
    assert cfg.optim_wrapper.clip_grad.max_norm == 5.0
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == 20 and optimizer.lr * warmup.start_factor == pytest.approx(1e-6)
    assert cosine.type == 'CosineAnnealingLR' and (cosine.begin, cosine.end) == (20, 300) and cosine.eta_min == 1e-5
    assert warmup.convert_to_iter_based and cosine.convert_to_iter_based
    assert cfg.train_cfg.max_epochs == 300
    assert cfg.model.train_cfg.augments == [dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]
    assert cfg.model.head.loss.label_smooth_val == 0.1
    train = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    assert train['RandAugment'].magnitude_level == 9 and train['RandAugment'].magnitude_std == 0.5
    assert train['RandomErasing'].erase_prob == 0.25
    test = {t.type: t for t in cfg.test_dataloader.dataset.pipeline}
    assert test['CenterCrop'].crop_size / test['ResizeEdge'].scale == 0.875
    assert test['ResizeEdge'].interpolation == 'bicubic'
    backbone = cfg.model.backbone
    assert backbone.out_indices == (3, ) and backbone.drop_path_rate == IN1K_DROP_PATH[arch]
    assert cfg.model.head.in_channels == STAGE_CHANNELS[arch][-1]


@pytest.mark.parametrize('path', DENSE, ids=_id)
def test_dense_config_loads_the_imagenet_classifier(path):
    cfg = load_config(path)
    backbone = cfg.model.backbone
    arch = _arch(path)
    assert pretrained_checkpoint(backbone.init_cfg) == f'dgt-{arch}_in1k.pth'
    assert set(backbone.init_cfg) == {'type', 'checkpoint', 'prefix'}
    assert backbone.drop_path_rate == DENSE_DROP_PATH[arch]
    # RetinaNet's FPN starts at stride 8: stages 1-3 only (stage 0's output norm would get no gradient)
    out_indices = (1, 2, 3) if Path(path).name.startswith('retinanet_') else (0, 1, 2, 3)
    assert backbone.groups == 'fixed' and tuple(backbone.out_indices) == out_indices
    assert cfg.model.get('pretrained') is None
    optimizer = cfg.optim_wrapper.optimizer
    if cfg.default_scope == 'mmdet':
        assert cfg.train_dataloader.batch_size == 2  # 8 GPUs x 2 = 16
        assert optimizer.type == 'AdamW' and optimizer.lr == 1e-4 and optimizer.weight_decay == 0.05
        epochs = 36 if 'ms-3x' in path else 12
        assert cfg.train_cfg.max_epochs == epochs
    elif Path(path).name.startswith('upernet_'):
        assert cfg.train_dataloader.batch_size == 2 and cfg.train_cfg.max_iters == 160000
        assert optimizer.type == 'AdamW' and optimizer.lr == 6e-5 and optimizer.weight_decay == 0.01
        warmup, poly = cfg.param_scheduler
        assert warmup.end == 1500 and poly.power == 1.0
        assert cfg.model.auxiliary_head.loss_decode.loss_weight == 0.4


def test_multi_scale_3x_pipeline():
    cfg = load_config('configs/dgt/mask-rcnn_dgt-t_fpn_ms-3x_coco.py')
    resize = [t for t in cfg.train_dataloader.dataset.pipeline if 'Resize' in t.type]
    assert len(resize) == 1 and resize[0].type == 'RandomChoiceResize' and resize[0].keep_ratio
    assert sorted({s[1] for s in resize[0].scales}) == list(range(480, 801, 32))
    assert {s[0] for s in resize[0].scales} == {1333}
    assert [s.milestones for s in cfg.param_scheduler if s.type == 'MultiStepLR'] == [[27, 33]]


@pytest.mark.parametrize('path', CONFIGS, ids=_id)
def test_model_builds_and_runs(path, one_thread):
    from mixformer_mm.models.backbones import DGT
    cfg = load_config(path)
    # ImageNet's 1000 classes and ADE20K's 150, which check_model_runs reads from the config
    if cfg.default_scope == 'mmpretrain':
        assert cfg.model.head.num_classes == 1000
    elif cfg.default_scope == 'mmseg':
        assert cfg.model.decode_head.num_classes == 150
        assert cfg.model.get('auxiliary_head') is None or cfg.model.auxiliary_head.num_classes == 150
    check_model_runs(cached_model(path), cfg, DGT, STAGE_CHANNELS[_arch(path)],
                     size=64 if cfg.default_scope == 'mmpretrain' else 128)


@pytest.mark.parametrize('path', ['configs/dgt/dgt-t_8xb128_in1k.py', 'configs/dgt/mask-rcnn_dgt-t_fpn_1x_coco.py',
                                  'configs/dgt/upernet_dgt-t_8xb2-160k_ade20k-512x512.py'], ids=_id)
def test_weight_decay_groups(path, one_thread):
    """No decay on norms (and, for ImageNet, on every 1-D parameter: biases, the CPE bias); decay elsewhere."""
    cfg = load_config(path)
    model = cached_model(path)

    def expected_decay(name, param, is_norm, base_decay):
        if cfg.default_scope == 'mmpretrain':
            return 0. if param.ndim <= 1 else base_decay
        return 0. if is_norm else base_decay

    decay_of = check_weight_decay(model, cfg, expected_decay)
    cpe_biases = [decay_of[id(p)] for n, p in model.named_parameters() if n.endswith('cpe.bias')]
    assert len(cpe_biases) == 22
    if cfg.default_scope == 'mmpretrain':
        assert set(cpe_biases) == {0.}  # spec section 7: no decay on the CPE bias


@pytest.mark.parametrize('arch', ['t', 's', 'b'])
def test_params_and_flops_within_one_percent_of_the_spec(arch, one_thread):
    """get_flops.py on the ImageNet config, DG-Attention's analytic cost included (spec section 3)."""
    from mixformer_mm.engine import load_config
    cfg = load_config(str(ROOT / f'configs/dgt/dgt-{arch}_8xb128_in1k.py'))
    params, flops = load_script('tools/analysis_tools/get_flops.py', 'get_flops').count(cfg, (224, 224))
    assert params / 1e6 == pytest.approx(SPEC_COMPLEXITY[arch][0], rel=0.01)
    assert flops / 1e9 == pytest.approx(SPEC_COMPLEXITY[arch][1], rel=0.01)
