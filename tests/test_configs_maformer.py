"""Every MAFormer config (configs/maformer/) parses, dumps, declares its imports and pretrained weights, follows its
(assumed, CSWin-lineage) recipe, and builds a model that runs.

Models are built with the registry of the codebase named by the config's ``default_scope`` (mmpretrain, mmdet,
mmseg) and run once, in eval mode, on a tiny input.
"""
import copy

import pytest
import torch

from tests.config_checks import (ROOT, arch_in_name, build_model, check_dump_round_trip, check_imports_mixformer_mm,
                                 check_model_runs, check_weight_decay, config_id, gpus_and_batch, in1k_learning_rates,
                                 load_config, pretrained_checkpoint)

CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs/maformer').glob('*.py'))

STAGE_CHANNELS = {'s': [64, 128, 256, 512], 'b': [64, 128, 256, 512], 'l': [96, 192, 384, 768]}
# CSWin T/S/B recipes (official README) mapped onto MAFormer S/B/L: (gpus, per gpu, lr, wd, drop path, EMA decay)
IN1K_RECIPE = {
    's': (8, 256, 2e-3, 0.05, 0.2, 0.99984),
    'b': (8, 256, 2e-3, 0.05, 0.4, 0.99984),
    'l': (8, 128, 1e-3, 0.1, 0.5, 0.99992),
}
DENSE_DROP_PATH = {'s': 0.2, 'b': 0.3, 'l': 0.3}

EXPECTED_FILES = (
    [f'configs/maformer/maformer-{a}_{n}_in1k.py' for a, n in (('s', '8xb256'), ('b', '8xb256'), ('l', '8xb128'))]
    + ['configs/maformer/maformer-l_8xb32_in1k-384px.py']
    + [f'configs/maformer/{name}' for a in 'sbl' for name in (
        f'mask-rcnn_maformer-{a}_fpn_1x_coco.py',
        f'mask-rcnn_maformer-{a}_fpn_ms-crop-3x_coco.py',
        f'upernet_maformer-{a}_8xb2-160k_ade20k-512x512.py',
        f'fpn_maformer-{a}_8xb2-80k_ade20k-512x512.py',
    )])


def _arch(path: str) -> str:
    return arch_in_name(path, r'maformer-([sbl])[_.]', 'MAFormer')


IN1K = [p for p in CONFIGS if '_in1k' in p]
DENSE = [p for p in CONFIGS if p not in IN1K]


def test_expected_config_files_exist():
    missing = [p for p in EXPECTED_FILES if p not in CONFIGS]
    assert not missing, f'missing configs: {missing}'
    assert sorted(EXPECTED_FILES) == CONFIGS  # and nothing untested


# one config per family for the (slow) dump/reload round trip; the B and L configs only change values
ROUND_TRIP = [p for p in CONFIGS if '-s_' in p or '384px' in p]


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_parses_and_declares_import(path):
    cfg = load_config(path)
    check_imports_mixformer_mm(cfg, path)
    assert cfg.model.backbone.type == 'MAFormer'
    assert cfg.model.backbone.arch == _arch(path)


@pytest.mark.parametrize('path', ROUND_TRIP, ids=config_id)
def test_config_dumps_and_reloads(path, tmp_path):
    check_dump_round_trip(load_config(path), path, tmp_path)


def _no_decay_set(paramwise):
    assert paramwise.norm_decay_mult == 0 and paramwise.bias_decay_mult == 0
    assert paramwise.custom_keys == {'pos_embed': dict(decay_mult=0.)}


@pytest.mark.parametrize('path', [p for p in IN1K if '384px' not in p], ids=config_id)
def test_in1k_recipe_is_cswins(path):
    cfg = load_config(path)
    arch = _arch(path)
    gpus, per_gpu, lr, wd, drop_path, ema = IN1K_RECIPE[arch]
    assert gpus_and_batch(path) == (gpus, per_gpu) and cfg.train_dataloader.batch_size == per_gpu
    assert cfg.auto_scale_lr.base_batch_size == gpus * per_gpu
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW' and optimizer.lr == pytest.approx(lr) and optimizer.weight_decay == wd
    assert cfg.optim_wrapper.clip_grad is None
    _no_decay_set(cfg.optim_wrapper.paramwise_cfg)
    assert cfg.optim_wrapper.paramwise_cfg.flat_decay_mult == 0
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and (warmup.begin, warmup.end) == (0, 20)
    assert warmup.start_factor * lr == pytest.approx(1e-6)
    assert cosine.type == 'CosineAnnealingLR' and (cosine.begin, cosine.end) == (20, 300)
    assert cosine.eta_min_ratio * lr == pytest.approx(1e-5)
    assert cfg.train_cfg.max_epochs == 310  # 10 cool-down epochs at the floor
    assert cfg.custom_hooks == [dict(type='EMAHook', momentum=pytest.approx(1 - ema), priority='ABOVE_NORMAL')]
    assert cfg.model.train_cfg.augments == [dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]
    assert cfg.model.head.loss.label_smooth_val == 0.1
    assert [t.get('scale') for t in cfg.test_dataloader.dataset.pipeline if t.type == 'ResizeEdge'] == [248]
    assert [t.get('scale') for t in cfg.val_dataloader.dataset.pipeline if t.type == 'ResizeEdge'] == [248]
    backbone = cfg.model.backbone
    assert backbone.out_indices == (3, ) and backbone.drop_path_rate == drop_path
    assert backbone.get('pretrain_img_size', 224) == 224
    assert cfg.model.neck.type == 'GlobalAveragePooling'
    assert cfg.model.head.in_channels == STAGE_CHANNELS[arch][-1]


def test_384_finetune_recipe():
    cfg = load_config('configs/maformer/maformer-l_8xb32_in1k-384px.py')
    assert cfg.load_from == 'checkpoints/maformer-l_in1k.pth'
    assert cfg.model.backbone.pretrain_img_size == 224 and cfg.model.backbone.drop_path_rate == 0.7
    assert cfg.optim_wrapper.optimizer.lr == 5e-6 and cfg.optim_wrapper.optimizer.weight_decay == 1e-8
    (cosine, ) = cfg.param_scheduler
    assert (cosine.begin, cosine.end) == (0, 20) and cosine.eta_min_ratio * 5e-6 == pytest.approx(5e-7)
    assert cfg.train_cfg.max_epochs == 30
    assert cfg.model.train_cfg.augments == [dict(type='Mixup', alpha=0.1), dict(type='CutMix', alpha=0.1)]
    assert cfg.custom_hooks[0].momentum == pytest.approx(2e-4)
    assert cfg.train_dataloader.batch_size == 32
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomResizedCrop']
    assert crop[0].scale == 384
    assert [t.crop_size for t in cfg.test_dataloader.dataset.pipeline if t.type == 'CenterCrop'] == [384]


@pytest.mark.parametrize('path', DENSE, ids=config_id)
def test_dense_config_backbone_settings(path):
    cfg = load_config(path)
    arch = _arch(path)
    backbone = cfg.model.backbone
    assert pretrained_checkpoint(backbone.init_cfg) == f'maformer-{arch}_in1k.pth'
    assert set(backbone.init_cfg) == {'type', 'checkpoint', 'prefix'}
    assert tuple(backbone.out_indices) == (0, 1, 2, 3)
    assert backbone.pretrain_img_size == 224 and backbone.drop_path_rate == DENSE_DROP_PATH[arch]
    assert backbone.with_cp == (arch == 'l')
    assert cfg.model.get('pretrained') is None  # a model-level `pretrained` would be passed to our backbone
    _no_decay_set(cfg.optim_wrapper.paramwise_cfg)
    expected = gpus_and_batch(path)
    if expected is not None:
        assert cfg.train_dataloader.batch_size == expected[1]
    if cfg.default_scope == 'mmdet':
        assert cfg.train_dataloader.batch_size == 2  # 8 GPUs x 2 = 16
        assert cfg.optim_wrapper.optimizer.lr == 1e-4 and cfg.optim_wrapper.optimizer.weight_decay == 0.05
        assert cfg.train_cfg.max_epochs == (36 if path.endswith('3x_coco.py') else 12)


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_model_builds_and_runs(path, one_thread):
    from mixformer_mm.models.backbones import MAFormer

    cfg = load_config(path)
    check_model_runs(build_model(cfg), cfg, MAFormer, STAGE_CHANNELS[_arch(path)],
                     size=64 if cfg.default_scope == 'mmpretrain' else 128)


@pytest.mark.parametrize('path', [
    'configs/maformer/maformer-s_8xb256_in1k.py',
    'configs/maformer/mask-rcnn_maformer-s_fpn_1x_coco.py',
    'configs/maformer/upernet_maformer-s_8xb2-160k_ade20k-512x512.py',
    'configs/maformer/fpn_maformer-s_8xb2-80k_ade20k-512x512.py',
], ids=config_id)
def test_weight_decay_groups(path, one_thread):
    """No decay on norms, biases and GLD position embeddings (spec 2.5); everything else decays."""
    cfg = load_config(path)

    def expected_decay(name, param, is_norm, base_decay):
        no_decay = is_norm or name.endswith('.bias') or 'pos_embed' in name
        if cfg.default_scope == 'mmpretrain':
            no_decay = no_decay or param.ndim <= 1
        return 0. if no_decay else base_decay

    model = build_model(cfg)
    check_weight_decay(model, cfg, expected_decay)
    assert any('gld.pos_embed' in name for name, _ in model.named_parameters())


def test_in1k_learning_rate_curve():
    """Warm-up from 1e-6 over 20 epochs, cosine to 1e-5 at epoch 300, 1e-5 until 310, updated per iteration."""
    cfg = load_config('configs/maformer/maformer-s_8xb256_in1k.py')
    epoch_length = 4
    lrs = in1k_learning_rates(cfg, cfg.train_cfg.max_epochs, epoch_length)
    assert lrs[0] == pytest.approx(1e-6)
    assert lrs[20 * epoch_length] == pytest.approx(2e-3)
    assert lrs[160 * epoch_length] == pytest.approx((2e-3 + 1e-5) / 2, rel=1e-3)
    assert lrs[300 * epoch_length] == pytest.approx(1e-5, rel=1e-3)
    assert lrs[-1] == pytest.approx(1e-5, rel=1e-3)


def test_imagenet_checkpoint_initialises_the_dense_backbone(tmp_path, one_thread):
    """The chain the dense configs rely on: an mmpretrain MAFormer-S checkpoint loads through the backbone's
    init_cfg (prefix 'backbone.'), only the three extra output norms being new."""
    classifier = build_model(load_config('configs/maformer/maformer-s_8xb256_in1k.py'))
    path = tmp_path / 'maformer-s_in1k.pth'
    torch.save({'state_dict': classifier.state_dict(), 'meta': {}}, path)
    cfg = load_config('configs/maformer/mask-rcnn_maformer-s_fpn_1x_coco.py')
    backbone_cfg = copy.deepcopy(cfg.model.backbone)
    backbone_cfg.init_cfg.checkpoint = str(path)
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()
    source = classifier.backbone.state_dict()
    for key, value in backbone.state_dict().items():
        if key.startswith(('out_norms.0.', 'out_norms.1.', 'out_norms.2.')):
            assert key not in source
        else:
            assert torch.equal(value, source[key]), key


@pytest.mark.parametrize('path', ['configs/demo/maformer-mini_demo_cls.py', 'configs/demo/maformer-mini_demo_det.py'],
                         ids=config_id)
def test_demo_config_builds_and_runs_at_its_image_size(path, one_thread, monkeypatch):
    """The demo GLD is built for the demo image size, so it runs the paper's token FC without resampling."""
    cfg = load_config(path)
    model = build_model(cfg)
    size = cfg.model.backbone.pretrain_img_size
    assert model.backbone.stages[0].blocks[0].gld.ref_hw == (size // 4, size // 4)

    def no_resampling(*args, **kwargs):
        raise AssertionError('GLD resampled at the demo image size')

    monkeypatch.setattr(torch.nn.functional, 'interpolate', no_resampling)
    with torch.no_grad():
        feats = model.backbone(torch.randn(2, 3, size, size))
    monkeypatch.undo()
    assert feats[-1].shape[-2:] == (size // 32, size // 32)
    if cfg.default_scope == 'mmpretrain':
        assert model.head(model.neck(feats)).shape == (2, cfg.model.head.num_classes)
    else:
        assert len(model.neck(feats)) == cfg.model.neck.num_outs
