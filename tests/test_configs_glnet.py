"""Every GLNet config (configs/glnet/) and demo config parses, dumps, declares its imports and pretrained weights,
follows its recipe, and builds a model that runs.

Models are built with the registry of the codebase named by the config's ``default_scope`` (mmpretrain, mmdet,
mmseg), once each, and run in eval mode on a tiny input.
"""
import re
from pathlib import Path

import pytest

from tests.config_checks import (ROOT, arch_in_name, cached_model, check_dump_round_trip, check_imports_mixformer_mm,
                                 check_model_runs, check_weight_decay, config_id, in1k_learning_rates, load_config,
                                 pretrained_checkpoint, task_of)

CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs/glnet').glob('*.py'))
DEMOS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs/demo').glob('glnet*.py'))

STAGE_CHANNELS = {
    'stl': [96, 192, 384, 768],
    'stl-paramslot': [96, 192, 384, 768],
    '4g': [64, 128, 256, 512],
    '9g': [96, 192, 384, 768],
    '16g': [128, 256, 512, 1024],
}
IN1K_DROP_PATH = {'stl': 0.1, 'stl-paramslot': 0.1, '4g': 0.15, '9g': 0.3, '16g': 0.4}  # official README

EXPECTED_FILES = (
    [f'configs/glnet/glnet-{a}_16xb128_in1k.py' for a in STAGE_CHANNELS]
    + [f'configs/glnet/{name}' for a in ('4g', '9g', '16g') for name in (
        f'mask-rcnn_glnet-{a}_fpn_1x_coco.py',
        f'mask-rcnn_glnet-{a}_fpn_ms-crop-3x_coco.py',
        f'retinanet_glnet-{a}_fpn_1x_coco.py',
        f'retinanet_glnet-{a}_fpn_ms-3x_coco.py',
        f'upernet_glnet-{a}_8xb2-160k_ade20k-512x512.py',
        f'fpn_glnet-{a}_8xb4-80k_ade20k-512x512.py',
    )]
    + ['configs/glnet/mask-rcnn_glnet-stl_fpn_1x_coco.py',
       'configs/glnet/upernet_glnet-stl_8xb2-160k_ade20k-512x512.py'])

DENSE_CHECKPOINT = re.compile(r'^glnet-(stl|4g|9g|16g)_in1k\.pth$')  # the classifier, as the converter writes it


def _arch(path: str) -> str:
    return arch_in_name(path, r'glnet-(stl-paramslot|stl|4g|9g|16g)[_.]', 'GLNet')


IN1K = [p for p in CONFIGS if p.endswith('_in1k.py')]
DENSE = [p for p in CONFIGS if p not in IN1K]


def test_expected_config_files_exist():
    missing = [p for p in EXPECTED_FILES if p not in CONFIGS]
    assert not missing, f'missing configs: {missing}'
    assert DEMOS, 'no GLNet demo config'


@pytest.mark.parametrize('path', CONFIGS + DEMOS, ids=config_id)
def test_config_parses_declares_import_and_dumps(path, tmp_path):
    cfg = load_config(path)
    check_imports_mixformer_mm(cfg, path)
    assert cfg.model.backbone.type in ('GLNet', 'mixformer_mm.GLNet')
    if path in CONFIGS:
        assert cfg.model.backbone.arch.replace('_', '-') == _arch(path)
    check_dump_round_trip(cfg, path, tmp_path)


@pytest.mark.parametrize('path', IN1K, ids=config_id)
def test_in1k_recipe(path):
    """Spec section 6.1: 2048 images per step, AdamW 2e-3, wd 0.05 (not on 1-D parameters), clip 5, 5 + 295
    epochs with a per-iteration cosine to 1e-5, Mixup/CutMix, label smoothing, repeated augmentation, EMA for 16G."""
    cfg = load_config(path)
    arch = _arch(path)
    assert cfg.train_dataloader.batch_size == 128 and cfg.auto_scale_lr.base_batch_size == 16 * 128
    assert cfg.train_dataloader.sampler == dict(type='RepeatAugSampler', num_repeats=3, shuffle=True)
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW' and optimizer.lr == 2e-3 and optimizer.eps == 1e-8
    assert optimizer.weight_decay == 0.05 and tuple(optimizer.betas) == (0.9, 0.999)
    paramwise = cfg.optim_wrapper.paramwise_cfg
    assert paramwise == dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.)
    assert cfg.optim_wrapper.clip_grad.max_norm == 5.0
    assert cfg.train_cfg.max_epochs == 300
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and (warmup.begin, warmup.end) == (0, 5) and warmup.start_factor <= 1e-6
    assert cosine.type == 'CosineAnnealingLR' and (cosine.begin, cosine.end) == (5, 300) and cosine.eta_min == 1e-5
    assert warmup.convert_to_iter_based and cosine.convert_to_iter_based
    assert cfg.model.train_cfg.augments == [dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]
    assert cfg.model.head.loss.label_smooth_val == 0.1
    ema = [h for h in cfg.get('custom_hooks', []) if h['type'] == 'EMAHook']
    assert len(ema) == (arch == '16g') and all(h['momentum'] == 1e-4 for h in ema)

    backbone = cfg.model.backbone
    assert backbone.out_indices == (3, ) and backbone.final_norm is True and backbone.extra_norms is False
    assert backbone.drop_path_rate == IN1K_DROP_PATH[arch]
    assert backbone.norm_cfg.type == 'BN'  # official: nn.BatchNorm2d
    assert cfg.model.neck.type == 'GlobalAveragePooling'
    assert cfg.model.head.in_channels == STAGE_CHANNELS[arch][-1]
    test_pipeline = cfg.test_dataloader.dataset.pipeline
    assert [t['type'] for t in test_pipeline][1:3] == ['ResizeEdge', 'CenterCrop']
    assert test_pipeline[1]['scale'] == 256 and test_pipeline[1]['interpolation'] == 'bicubic'


@pytest.mark.parametrize('path', DENSE, ids=config_id)
def test_dense_recipe_and_backbone_checkpoint(path):
    cfg = load_config(path)
    name = Path(path).name
    backbone = cfg.model.backbone
    match = DENSE_CHECKPOINT.match(pretrained_checkpoint(backbone.init_cfg))
    assert match, f'{path}: {backbone.init_cfg}'
    assert match.group(1) == backbone.arch, f'{path}: checkpoint of another variant'
    assert backbone.extra_norms is True and backbone.get('final_norm', False) is False
    assert cfg.model.get('pretrained') is None  # a model-level `pretrained` would be passed to our backbone
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW'
    if task_of(cfg) == 'mmdet':  # spec section 7.4: frozen BN statistics for detection
        assert backbone.norm_cfg.type == 'BN' and backbone.norm_eval is True
        assert cfg.train_dataloader.batch_size == 2 and optimizer.lr == 1e-4
        if name.startswith('retinanet'):
            assert optimizer.weight_decay == 1e-4
            assert cfg.model.neck.add_extra_convs == 'on_input' and cfg.model.neck.num_outs == 5
        else:
            assert optimizer.weight_decay == 0.05 and cfg.optim_wrapper.paramwise_cfg == dict(norm_decay_mult=0.)
        assert cfg.train_cfg.max_epochs == (36 if name.endswith('3x_coco.py') else 12)
    else:  # and SyncBN for segmentation
        assert backbone.norm_cfg.type == 'SyncBN'
        if name.startswith('fpn_'):
            assert cfg.train_dataloader.batch_size == 4 and cfg.train_cfg.max_iters == 80000
            assert (optimizer.lr, optimizer.weight_decay) == (2e-4, 1e-4)
            warmup, cosine = cfg.param_scheduler
            assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR', 0.1, 1000)
            assert (cosine.type, cosine.begin, cosine.end, cosine.eta_min_ratio) == ('CosineAnnealingLR', 1000,
                                                                                     80000, 1e-8)
        else:
            assert cfg.train_dataloader.batch_size == 2 and cfg.train_cfg.max_iters == 160000
            assert (optimizer.lr, optimizer.weight_decay) == (6e-5, 0.01)
            assert cfg.optim_wrapper.paramwise_cfg == dict(norm_decay_mult=0.)
            warmup, poly = cfg.param_scheduler
            assert (warmup.end, poly.type, poly.power) == (1500, 'PolyLR', 1.0)
            assert cfg.model.auxiliary_head.in_channels == STAGE_CHANNELS[_arch(path)][2]
    if name.split('_')[1] == 'glnet-4g':  # BiFormer-S's values (spec section 7.3)
        expected = {'mask-rcnn': 0.2, 'retinanet': 0.2, 'fpn': 0.15, 'upernet': 0.3}[name.split('_')[0]]
        assert backbone.drop_path_rate == expected


@pytest.mark.parametrize('arch', ['4g', '9g', '16g'])
def test_retinanet_3x_is_1x_with_mmdets_retinanet_ms_3x_pipeline_and_schedule(arch):
    """The paper's RetinaNet 3x + multi-scale has no published recipe: the 1x config with the training pipeline and
    schedule of mmdet's own RetinaNet ms-3x, and nothing else changed."""
    import mmdet
    from mmengine.config import Config

    ours = load_config(f'configs/glnet/retinanet_glnet-{arch}_fpn_ms-3x_coco.py')
    one_x = load_config(f'configs/glnet/retinanet_glnet-{arch}_fpn_1x_coco.py')
    # the configs mmdet installs with itself, which `mmdet::` paths in our configs name
    reference = Config.fromfile(
        str(Path(mmdet.__file__).parent / '.mim/configs/retinanet/retinanet_r50-caffe_fpn_ms-3x_coco.py'))

    def transforms(cfg):
        return [{k: v for k, v in t.items() if k not in ('backend_args', '_scope_')}
                for t in cfg.train_dataloader.dataset.pipeline]

    assert transforms(ours) == transforms(reference)
    assert ours.param_scheduler == reference.param_scheduler
    assert (ours.train_cfg.max_epochs, ours.train_cfg.val_interval) == (36, 1)
    for key in ('model', 'optim_wrapper', 'val_dataloader', 'test_dataloader', 'val_evaluator', 'auto_scale_lr'):
        assert ours.to_dict()[key] == one_x.to_dict()[key], key
    assert {k: v for k, v in ours.train_dataloader.items() if k != 'dataset'} == \
        {k: v for k, v in one_x.train_dataloader.items() if k != 'dataset'}


@pytest.mark.parametrize('path', CONFIGS + DEMOS, ids=config_id)
def test_model_builds_and_runs(path, one_thread):
    from mixformer_mm.models.backbones import GLNet

    model = cached_model(path)
    # the demo configs' mini variants are not in STAGE_CHANNELS
    channels = STAGE_CHANNELS[_arch(path)] if path in CONFIGS else model.backbone.embed_dims
    check_model_runs(model, load_config(path), GLNet, channels, size=64)


FAMILY_REPRESENTATIVES = [
    'configs/glnet/glnet-4g_16xb128_in1k.py',
    'configs/glnet/glnet-16g_16xb128_in1k.py',
    'configs/glnet/mask-rcnn_glnet-4g_fpn_1x_coco.py',
    'configs/glnet/retinanet_glnet-4g_fpn_1x_coco.py',
    'configs/glnet/upernet_glnet-4g_8xb2-160k_ade20k-512x512.py',
    'configs/glnet/fpn_glnet-4g_8xb4-80k_ade20k-512x512.py',
]


@pytest.mark.parametrize('path', FAMILY_REPRESENTATIVES, ids=config_id)
def test_weight_decay_groups(path, one_thread):
    """The optimizer built from the config decays what the recipe says, and nothing else."""
    cfg = load_config(path)
    model = cached_model(path)

    def expected_decay(name, param, is_norm, base_decay):
        if Path(path).name.startswith(('fpn_', 'retinanet_')):
            return base_decay  # decay everywhere
        if task_of(cfg) == 'mmpretrain':
            # official: no decay for 1-D parameters and biases, but the 0-dim slot_scale is decayed
            return 0. if param.ndim == 1 else base_decay
        return 0. if is_norm else base_decay

    decay_of = check_weight_decay(model, cfg, expected_decay, skip_frozen=True)
    if task_of(cfg) == 'mmpretrain':
        slot_scale = model.backbone.stages[0].blocks[0].slot_scale
        assert slot_scale.ndim == 0 and decay_of[id(slot_scale)] == cfg.optim_wrapper.optimizer.weight_decay


def test_in1k_learning_rate_curve():
    """Warm-up from ~0 over 5 epochs to 2e-3, cosine to 1e-5 at epoch 300, updated per iteration."""
    epoch_length = 4
    lrs = in1k_learning_rates(load_config('configs/glnet/glnet-4g_16xb128_in1k.py'), 300, epoch_length)
    assert lrs[0] < 1e-8
    assert lrs[5 * epoch_length] == pytest.approx(2e-3)
    assert lrs[(5 + 295 // 2) * epoch_length + 2] == pytest.approx((2e-3 + 1e-5) / 2, rel=1e-2)  # cosine midpoint
    assert lrs[-1] == pytest.approx(1e-5, rel=1e-3)
