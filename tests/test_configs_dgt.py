"""Every DGT config (configs/dgt/) parses, dumps, declares its imports and pretrained weights, follows the spec's
(assumed) recipe, builds a model that runs, and the ImageNet models have the spec's params and FLOPs.

Models are built with the registry of the codebase named by the config's ``default_scope`` and run once, in eval
mode, on a tiny input.
"""
import copy
import functools
import importlib.util
import math
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[1]
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
        f'fpn_dgt-{a}_8xb4-80k_ade20k-512x512.py',
    )]
IN1K = [p for p in CONFIGS if p.endswith('_in1k.py')]
DENSE = [p for p in CONFIGS if p not in IN1K]


def _id(path: str) -> str:
    return path[len('configs/dgt/'):-len('.py')]


def _arch(path: str) -> str:
    match = re.search(r'dgt-([tsb])[_.]', Path(path).name)
    assert match, f'{path}: the file name does not name a DGT variant'
    return match.group(1)


@functools.lru_cache(maxsize=None)
def _load(path: str) -> Config:
    return Config.fromfile(str(ROOT / path))


@functools.lru_cache(maxsize=None)
def _build(path: str):
    import mixformer_mm  # noqa: F401
    from mmengine.registry import init_default_scope
    cfg = _load(path)
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmpretrain':
        from mmpretrain.registry import MODELS
    elif cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS.build(copy.deepcopy(cfg.model)).eval()


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_expected_config_files_exist():
    assert sorted(EXPECTED_FILES) == CONFIGS


@pytest.mark.parametrize('path', CONFIGS, ids=_id)
def test_config_parses_declares_import_and_dumps(path, tmp_path):
    cfg = _load(path)
    imports = cfg.get('custom_imports')
    assert imports is not None and 'mixformer_mm' in imports['imports']
    assert imports.get('allow_failed_imports', False) is False
    assert cfg.default_scope in ('mmpretrain', 'mmdet', 'mmseg')
    assert cfg.model.backbone.type == 'DGT' and cfg.model.backbone.arch == _arch(path)
    dumped = tmp_path / 'dumped.py'
    cfg.dump(str(dumped))
    reloaded = Config.fromfile(str(dumped), import_custom_modules=False)
    for key in ('model', 'optim_wrapper', 'param_scheduler', 'train_cfg', 'custom_imports', 'default_scope'):
        assert reloaded.to_dict()[key] == cfg.to_dict()[key], f'{path}: {key} changes when dumped and reloaded'


@pytest.mark.parametrize('path', IN1K, ids=_id)
def test_in1k_recipe_is_the_specs(path):
    cfg = _load(path)
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
    cfg = _load(path)
    backbone = cfg.model.backbone
    arch = _arch(path)
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=f'checkpoints/dgt-{arch}_in1k.pth',
                                     prefix='backbone.')
    assert backbone.drop_path_rate == DENSE_DROP_PATH[arch]
    assert backbone.groups == 'fixed' and tuple(backbone.out_indices) == (0, 1, 2, 3)
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
    cfg = _load('configs/dgt/mask-rcnn_dgt-t_fpn_ms-3x_coco.py')
    resize = [t for t in cfg.train_dataloader.dataset.pipeline if 'Resize' in t.type]
    assert len(resize) == 1 and resize[0].type == 'RandomChoiceResize' and resize[0].keep_ratio
    assert sorted({s[1] for s in resize[0].scales}) == list(range(480, 801, 32))
    assert {s[0] for s in resize[0].scales} == {1333}
    assert [s.milestones for s in cfg.param_scheduler if s.type == 'MultiStepLR'] == [[27, 33]]


@pytest.mark.parametrize('path', CONFIGS, ids=_id)
def test_model_builds_and_runs(path, one_thread):
    from mixformer_mm.models.backbones import DGT
    cfg = _load(path)
    arch = _arch(path)
    channels = STAGE_CHANNELS[arch]
    model = _build(path)
    assert isinstance(model.backbone, DGT) and model.backbone.embed_dims == channels
    out_indices = tuple(cfg.model.backbone.out_indices)
    torch.manual_seed(0)
    size = 64 if cfg.default_scope == 'mmpretrain' else 128
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, size, size))
        assert [f.shape for f in feats] == [(1, channels[i], size // 2**(i + 2), size // 2**(i + 2))
                                           for i in out_indices]
        if cfg.default_scope == 'mmpretrain':
            logits = model.head(model.neck(feats))
            assert logits.shape == (1, 1000) and torch.isfinite(logits).all()
        elif cfg.default_scope == 'mmdet':
            outs = model.neck(feats)
            assert len(outs) == cfg.model.neck.num_outs and all(torch.isfinite(o).all() for o in outs)
        else:
            if model.with_neck:
                feats = model.neck(feats)
            logits = model.decode_head(feats)
            assert logits.shape == (1, 150, size // 4, size // 4) and torch.isfinite(logits).all()
            if model.with_auxiliary_head:
                assert model.auxiliary_head(feats).shape[:2] == (1, 150)


@pytest.mark.parametrize('path', ['configs/dgt/dgt-t_8xb128_in1k.py', 'configs/dgt/mask-rcnn_dgt-t_fpn_1x_coco.py',
                                  'configs/dgt/upernet_dgt-t_8xb2-160k_ade20k-512x512.py'], ids=_id)
def test_weight_decay_groups(path, one_thread):
    """No decay on norms (and, for ImageNet, on every 1-D parameter: biases, the CPE bias); decay elsewhere."""
    from mmengine.optim import build_optim_wrapper
    from torch.nn.modules.batchnorm import _BatchNorm
    cfg = _load(path)
    model = _build(path)
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    decay_of = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups for p in g['params']}
    norms = {id(p) for m in model.modules() if isinstance(m, (_BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm))
             for p in m.parameters(recurse=False)}
    base = cfg.optim_wrapper.optimizer.weight_decay
    for name, param in model.named_parameters():
        if cfg.default_scope == 'mmpretrain':
            expected = 0. if param.ndim <= 1 else base
        else:
            expected = 0. if id(param) in norms else base
        assert decay_of[id(param)] == pytest.approx(expected), f'{name}: weight decay {decay_of[id(param)]}'
    cpe_biases = [decay_of[id(p)] for n, p in model.named_parameters() if n.endswith('cpe.bias')]
    assert len(cpe_biases) == 22
    if cfg.default_scope == 'mmpretrain':
        assert set(cpe_biases) == {0.}  # spec section 7: no decay on the CPE bias


def _get_flops():
    spec = importlib.util.spec_from_file_location('get_flops', ROOT / 'tools/analysis_tools/get_flops.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('arch', ['t', 's', 'b'])
def test_params_and_flops_within_one_percent_of_the_spec(arch, one_thread):
    """get_flops.py on the ImageNet config, DG-Attention's analytic cost included (spec section 3)."""
    from mixformer_mm.engine import load_config
    cfg = load_config(str(ROOT / f'configs/dgt/dgt-{arch}_8xb128_in1k.py'))
    params, flops = _get_flops().count(cfg, (224, 224))
    assert params / 1e6 == pytest.approx(SPEC_COMPLEXITY[arch][0], rel=0.01)
    assert flops / 1e9 == pytest.approx(SPEC_COMPLEXITY[arch][1], rel=0.01)


def test_demo_config_trains_and_tests(tmp_path):
    """configs/demo/dgt-mini_demo_cls.py through tools/train.py (a few iterations) and tools/test.py on its checkpoint.

    The full demo (250 iterations) is run by hand; this checks that the whole pipeline works end to end.
    """
    import json
    import os
    import subprocess
    import sys
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    work_dir = tmp_path / 'demo'
    config = 'configs/demo/dgt-mini_demo_cls.py'
    iters = 4
    options = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}', 'train_dataloader.batch_size=4',
               'param_scheduler.0.end=2', 'param_scheduler.1.begin=2', f'param_scheduler.1.end={iters}',
               f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=1',
               'val_dataloader.dataset.indices=16', 'val_dataloader.batch_size=8']
    train = subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir), '--cfg-options']
                           + options, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    checkpoint = work_dir / f'iter_{iters}.pth'
    assert checkpoint.is_file()
    logs = sorted(work_dir.glob('*/vis_data/scalars.json'))
    records = [json.loads(line) for line in logs[-1].read_text().splitlines() if line.strip()]
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(losses) == iters and all(math.isfinite(v) for v in losses)
    assert any('accuracy/top1' in r for r in records)

    test = subprocess.run([sys.executable, 'tools/test.py', config, str(checkpoint), '--work-dir',
                           str(tmp_path / 'test'), '--cfg-options', 'test_dataloader.dataset.indices=16',
                           'test_dataloader.batch_size=8'],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    assert 'accuracy/top1' in test.stdout + test.stderr
