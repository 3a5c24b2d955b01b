"""Every GroupMixFormer config (configs/groupmixformer/) and backbone-swap example (configs/swap_backbone/) parses,
dumps, declares its imports and pretrained weights, follows its recipe, and builds a model that runs.

Models are built with the registry of the codebase named by the config's ``default_scope`` (mmpretrain, mmdet,
mmseg) and run once, in eval mode, on a tiny input.
"""
import ast
import copy
import functools
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIRS = ('configs/groupmixformer', 'configs/swap_backbone')
CONFIGS = sorted(str(p.relative_to(ROOT)) for d in CONFIG_DIRS for p in (ROOT / d).glob('*.py'))

STAGE_CHANNELS = {
    'm': [40, 80, 160, 160],
    't': [80, 160, 200, 240],
    's': [80, 160, 320, 320],
    'b': [200, 240, 320, 480],
    'l': [240, 320, 360, 480],
}
IN1K_DROP_PATH = {'m': 0.1, 't': 0.1, 's': 0.2, 'b': 0.5, 'l': 0.1}

EXPECTED_FILES = (
    [f'configs/groupmixformer/groupmixformer-{a}_8xb64_in1k.py' for a in 'mtsbl']
    + [f'configs/groupmixformer/{name}' for a in 'tsb' for name in (
        f'mask-rcnn_groupmixformer-{a}_fpn_1x_coco.py',
        f'mask-rcnn_groupmixformer-{a}_fpn_ms-3x_coco.py',
        f'retinanet_groupmixformer-{a}_fpn_1x_coco.py',
        f'upernet_groupmixformer-{a}_8xb2-160k_ade20k-512x512.py',
        f'fpn_groupmixformer-{a}_8xb4-80k_ade20k-512x512.py',
    )]
    + ['configs/swap_backbone/cascade-mask-rcnn_groupmixformer-t_fpn_1x_coco.py',
       'configs/swap_backbone/upernet_groupmixformer-t_4xb4-160k_ade20k-512x512.py'])

DENSE_CHECKPOINT = re.compile(r'^checkpoints/groupmixformer-([mtsbl])_in1k_backbone\.pth$')


def _id(path: str) -> str:
    return path[len('configs/'):-len('.py')]


def _arch(path: str) -> str:
    match = re.search(r'groupmixformer-([mtsbl])[_.]', Path(path).name)
    assert match, f'{path}: the file name does not name a GroupMixFormer variant'
    return match.group(1)


def _gpus_and_batch(path: str):
    match = re.search(r'_(\d+)xb(\d+)[-_]', Path(path).name)
    return (int(match.group(1)), int(match.group(2))) if match else None


@functools.lru_cache(maxsize=None)
def _load(path: str) -> Config:
    # Config.fromfile runs the config's custom_imports: this fails unless `mixformer_mm` imports.
    return Config.fromfile(str(ROOT / path))


def _task(cfg: Config) -> str:
    assert cfg.default_scope in ('mmpretrain', 'mmdet', 'mmseg'), cfg.default_scope
    return cfg.default_scope


IN1K = [p for p in CONFIGS if p.endswith('_in1k.py')]
DENSE = [p for p in CONFIGS if p not in IN1K]


def test_expected_config_files_exist():
    missing = [p for p in EXPECTED_FILES if p not in CONFIGS]
    assert not missing, f'missing configs: {missing}'


@pytest.mark.parametrize('path', CONFIGS, ids=_id)
def test_config_parses_declares_import_and_dumps(path, tmp_path):
    cfg = _load(path)
    imports = cfg.get('custom_imports')
    assert imports is not None and 'mixformer_mm' in imports['imports'], f'{path}: no custom_imports of mixformer_mm'
    assert imports.get('allow_failed_imports', False) is False
    assert cfg.model.backbone.type in ('GroupMixFormer', 'mixformer_mm.GroupMixFormer')
    assert cfg.model.backbone.arch == _arch(path)
    _task(cfg)

    dumped = tmp_path / 'dumped.py'
    cfg.dump(str(dumped))
    reloaded = Config.fromfile(str(dumped), import_custom_modules=False)
    for key in ('model', 'optim_wrapper', 'param_scheduler', 'train_cfg', 'custom_imports', 'default_scope'):
        assert reloaded.to_dict()[key] == cfg.to_dict()[key], f'{path}: {key} changes when dumped and reloaded'


@pytest.mark.parametrize('path', IN1K, ids=_id)
def test_in1k_recipe(path):
    cfg = _load(path)
    arch = _arch(path)
    gpus, per_gpu = _gpus_and_batch(path)
    total = gpus * per_gpu
    assert (gpus, per_gpu) == (8, 64) and cfg.train_dataloader.batch_size == per_gpu
    assert cfg.auto_scale_lr.base_batch_size == 512 == total
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW'
    assert optimizer.lr == pytest.approx(5e-4 * total / 512)
    assert optimizer.weight_decay == 0.05 and tuple(optimizer.betas) == (0.9, 0.999)
    paramwise = cfg.optim_wrapper.paramwise_cfg
    assert paramwise.norm_decay_mult == 0 and paramwise.bias_decay_mult == 0 and paramwise.flat_decay_mult == 0
    assert cfg.optim_wrapper.clip_grad.max_norm == 5.0
    assert cfg.train_cfg.max_epochs == 300
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == 20 and warmup.start_factor == pytest.approx(1e-3)
    assert cosine.type == 'CosineAnnealingLR' and (cosine.begin, cosine.end) == (20, 300)
    assert cosine.eta_min_ratio == pytest.approx(1e-2)  # 5e-6 at lr 5e-4
    assert warmup.convert_to_iter_based and cosine.convert_to_iter_based
    assert cfg.model.train_cfg.augments == [dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]
    assert cfg.model.head.loss.label_smooth_val == 0.1

    backbone = cfg.model.backbone
    assert backbone.out_indices == (3, ) and backbone.final_norm is True
    assert backbone.drop_path_rate == IN1K_DROP_PATH[arch]
    assert backbone.norm_cfg.type == 'SyncBN'  # hard-coded in the official training code
    assert cfg.model.neck.type == 'GlobalAveragePooling'
    assert cfg.model.head.in_channels == STAGE_CHANNELS[arch][-1]


@pytest.mark.parametrize('path', DENSE, ids=_id)
def test_dense_config_loads_a_backbone_checkpoint(path):
    cfg = _load(path)
    backbone = cfg.model.backbone
    init_cfg = backbone.get('init_cfg')
    assert init_cfg is not None and init_cfg['type'] == 'Pretrained', f'{path}: backbone has no Pretrained init_cfg'
    match = DENSE_CHECKPOINT.match(init_cfg['checkpoint'])
    assert match, f'{path}: unexpected backbone checkpoint {init_cfg["checkpoint"]!r}'
    assert match.group(1) == backbone.arch, f'{path}: checkpoint of another variant'
    assert 'prefix' not in init_cfg  # backbone-only checkpoints carry no `backbone.` prefix
    assert backbone.norm_cfg.type == 'SyncBN'
    assert cfg.model.get('pretrained') is None  # a model-level `pretrained` would be passed to our backbone

    expected = _gpus_and_batch(path)
    if expected is not None:
        assert cfg.train_dataloader.batch_size == expected[1]
    if _task(cfg) == 'mmdet':
        assert cfg.train_dataloader.batch_size == 2  # 8 GPUs x 2 = 16


@pytest.mark.parametrize('path', [p for p in CONFIGS if 'swap_backbone' in p], ids=_id)
def test_swap_example_inherits_only_the_unmodified_parent(path):
    tree = ast.parse((ROOT / path).read_text())
    assigned = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}
    base = ast.literal_eval(assigned['_base_'])
    assert isinstance(base, str) and base.split('::')[0] in ('mmdet', 'mmseg'), base
    assert 'custom_imports' in assigned  # written inline, as a user would


def _build(cfg: Config):
    import mixformer_mm  # noqa: F401  (registers GroupMixFormer)
    from mmengine.registry import init_default_scope
    task = _task(cfg)
    init_default_scope(task)
    if task == 'mmpretrain':
        from mmpretrain.registry import MODELS
    elif task == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    model = MODELS.build(copy.deepcopy(cfg.model))
    return model.eval()


@pytest.fixture
def one_thread():
    # These inputs are tiny: one thread is fastest, and on a busy machine several threads can be 50x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize('path', CONFIGS, ids=_id)
def test_model_builds_and_runs(path, one_thread):
    from mixformer_mm.models.backbones import GroupMixFormer

    cfg = _load(path)
    arch = _arch(path)
    channels = STAGE_CHANNELS[arch]
    model = _build(cfg)
    assert isinstance(model.backbone, GroupMixFormer)
    assert model.backbone.embed_dims == channels
    out_indices = tuple(cfg.model.backbone.out_indices)

    torch.manual_seed(0)
    task = _task(cfg)
    size = 64 if task == 'mmpretrain' else 128
    inputs = torch.randn(1, 3, size, size)
    with torch.no_grad():
        feats = model.backbone(inputs)
        assert [f.shape for f in feats] == [(1, channels[i], size // 2**(i + 2), size // 2**(i + 2))
                                           for i in out_indices]
        assert all(torch.isfinite(f).all() for f in feats)

        if task == 'mmpretrain':
            logits = model.head(model.neck(feats))
            assert logits.shape == (1, cfg.model.head.num_classes)
            assert torch.isfinite(logits).all()
        elif task == 'mmdet':
            outs = model.neck(feats)
            assert len(outs) == cfg.model.neck.num_outs
            assert all(o.shape[1] == cfg.model.neck.out_channels for o in outs)
            assert outs[0].shape[-2:] == feats[cfg.model.neck.get('start_level', 0)].shape[-2:]
            assert all(torch.isfinite(o).all() for o in outs)
        else:
            if model.with_neck:
                feats = model.neck(feats)
            logits = model.decode_head(feats)
            assert logits.shape == (1, cfg.model.decode_head.num_classes, size // 4, size // 4)
            assert torch.isfinite(logits).all()
            if model.with_auxiliary_head:
                aux = model.auxiliary_head(feats)
                assert aux.shape[:2] == (1, cfg.model.auxiliary_head.num_classes)


FAMILY_REPRESENTATIVES = [
    'configs/groupmixformer/groupmixformer-t_8xb64_in1k.py',
    'configs/groupmixformer/mask-rcnn_groupmixformer-t_fpn_1x_coco.py',
    'configs/groupmixformer/mask-rcnn_groupmixformer-t_fpn_ms-3x_coco.py',
    'configs/groupmixformer/retinanet_groupmixformer-t_fpn_1x_coco.py',
    'configs/groupmixformer/upernet_groupmixformer-t_8xb2-160k_ade20k-512x512.py',
    'configs/groupmixformer/fpn_groupmixformer-t_8xb4-80k_ade20k-512x512.py',
]


@pytest.mark.parametrize('path', FAMILY_REPRESENTATIVES, ids=_id)
def test_weight_decay_groups(path, one_thread):
    """The optimizer built from the config decays what the recipe says, and nothing else."""
    from mmengine.optim import build_optim_wrapper
    from torch.nn.modules.batchnorm import _BatchNorm

    cfg = _load(path)
    model = _build(cfg)
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    decay_of = {id(p): group['weight_decay'] for group in optim_wrapper.optimizer.param_groups for p in group['params']}
    norm_params = {id(p) for m in model.modules() if isinstance(m, (_BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm))
                   for p in m.parameters(recurse=False)}
    base_decay = cfg.optim_wrapper.optimizer.weight_decay
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if Path(path).name.startswith('fpn_'):
            expected = base_decay  # Semantic FPN recipe: decay everywhere
        elif _task(cfg) == 'mmpretrain':
            expected = 0. if param.ndim <= 1 else base_decay  # official: no decay on 1-D params and biases
        else:
            expected = 0. if id(param) in norm_params else base_decay
        assert decay_of[id(param)] == pytest.approx(expected), f'{path}: {name} has weight decay {decay_of[id(param)]}'


def test_in1k_learning_rate_curve():
    """Warm-up from 5e-7 over 20 epochs, cosine to 5e-6 at epoch 300, updated per iteration."""
    from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR
    from mmengine.registry import PARAM_SCHEDULERS, init_default_scope

    cfg = _load('configs/groupmixformer/groupmixformer-t_8xb64_in1k.py')
    init_default_scope(cfg.default_scope)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim_wrapper.optimizer.lr)
    epoch_length = 4
    schedulers = []
    for scheduler_cfg in copy.deepcopy(cfg.param_scheduler):
        schedulers.append(PARAM_SCHEDULERS.build(
            scheduler_cfg, default_args=dict(optimizer=optimizer, epoch_length=epoch_length)))
    assert [type(s) for s in schedulers] == [LinearLR, CosineAnnealingLR]
    lrs = []
    for _ in range(300 * epoch_length):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    lrs.append(optimizer.param_groups[0]['lr'])
    assert lrs[0] == pytest.approx(5e-7)
    assert lrs[20 * epoch_length] == pytest.approx(5e-4)
    # mmengine's LinearLR reaches the peak one iteration before `end`, timm's at `end`: equal up to 1/iterations
    assert lrs[10 * epoch_length] == pytest.approx((5e-7 + 5e-4) / 2, rel=2 / (20 * epoch_length))
    assert lrs[160 * epoch_length] == pytest.approx((5e-4 + 5e-6) / 2, rel=1e-3)  # cosine midpoint
    assert lrs[-1] == pytest.approx(5e-6, rel=1e-3)
    assert len(set(lrs[:20 * epoch_length])) == 20 * epoch_length  # changes every iteration
