"""Every GroupMixFormer config (configs/groupmixformer/) and backbone-swap example (configs/swap_backbone/) parses,
dumps, declares its imports and pretrained weights, follows its recipe, and builds a model that runs.

Models are built with the registry of the codebase named by the config's ``default_scope`` (mmpretrain, mmdet,
mmseg) and run once, in eval mode, on a tiny input.
"""
import ast
import re
from pathlib import Path

import pytest

from tests.config_checks import (ROOT, arch_in_name, build_model, check_dump_round_trip, check_imports_mixformer_mm,
                                 check_model_runs, check_weight_decay, config_id, gpus_and_batch, in1k_learning_rates,
                                 load_config, pretrained_checkpoint, task_of)

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
        f'mask-rcnn_groupmixformer-{a}_fpn_ms-crop-3x_coco.py',
        f'retinanet_groupmixformer-{a}_fpn_1x_coco.py',
        f'upernet_groupmixformer-{a}_8xb2-160k_ade20k-512x512.py',
        f'fpn_groupmixformer-{a}_8xb2-80k_ade20k-512x512.py',
    )]
    + ['configs/swap_backbone/cascade-mask-rcnn_groupmixformer-t_fpn_1x_coco.py',
       'configs/swap_backbone/upernet_groupmixformer-t_4xb4-160k_ade20k-512x512.py'])

DENSE_CHECKPOINT = re.compile(r'^groupmixformer-([mtsbl])_in1k\.pth$')  # the classifier, as the converter writes it


def _arch(path: str) -> str:
    return arch_in_name(path, r'groupmixformer-([mtsbl])[_.]', 'GroupMixFormer')


IN1K = [p for p in CONFIGS if p.endswith('_in1k.py')]
DENSE = [p for p in CONFIGS if p not in IN1K]


def test_expected_config_files_exist():
    missing = [p for p in EXPECTED_FILES if p not in CONFIGS]
    assert not missing, f'missing configs: {missing}'


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_parses_declares_import_and_dumps(path, tmp_path):
    cfg = load_config(path)
    check_imports_mixformer_mm(cfg, path)
    assert cfg.model.backbone.type in ('GroupMixFormer', 'mixformer_mm.GroupMixFormer')
    assert cfg.model.backbone.arch == _arch(path)
    check_dump_round_trip(cfg, path, tmp_path)


@pytest.mark.parametrize('path', IN1K, ids=config_id)
def test_in1k_recipe(path):
    cfg = load_config(path)
    arch = _arch(path)
    gpus, per_gpu = gpus_and_batch(path)
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


@pytest.mark.parametrize('path', DENSE, ids=config_id)
def test_dense_config_loads_a_backbone_checkpoint(path):
    cfg = load_config(path)
    backbone = cfg.model.backbone
    init_cfg = backbone.get('init_cfg')
    match = DENSE_CHECKPOINT.match(pretrained_checkpoint(init_cfg))
    assert match, f'{path}: unexpected backbone checkpoint {init_cfg["checkpoint"]!r}'
    assert match.group(1) == backbone.arch, f'{path}: checkpoint of another variant'
    assert backbone.norm_cfg.type == 'SyncBN'
    assert cfg.model.get('pretrained') is None  # a model-level `pretrained` would be passed to our backbone

    expected = gpus_and_batch(path)
    if expected is not None:
        assert cfg.train_dataloader.batch_size == expected[1]
    if task_of(cfg) == 'mmdet':
        assert cfg.train_dataloader.batch_size == 2  # 8 GPUs x 2 = 16


@pytest.mark.parametrize('path', [p for p in CONFIGS if 'swap_backbone' in p], ids=config_id)
def test_swap_example_inherits_only_the_unmodified_parent(path):
    tree = ast.parse((ROOT / path).read_text())
    assigned = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}
    base = ast.literal_eval(assigned['_base_'])
    assert isinstance(base, str) and base.split('::')[0] in ('mmdet', 'mmseg'), base
    assert 'custom_imports' in assigned  # written inline, as a user would


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_model_builds_and_runs(path, one_thread):
    from mixformer_mm.models.backbones import GroupMixFormer

    cfg = load_config(path)
    check_model_runs(build_model(cfg), cfg, GroupMixFormer, STAGE_CHANNELS[_arch(path)],
                     size=64 if task_of(cfg) == 'mmpretrain' else 128)


FAMILY_REPRESENTATIVES = [
    'configs/groupmixformer/groupmixformer-t_8xb64_in1k.py',
    'configs/groupmixformer/mask-rcnn_groupmixformer-t_fpn_1x_coco.py',
    'configs/groupmixformer/mask-rcnn_groupmixformer-t_fpn_ms-crop-3x_coco.py',
    'configs/groupmixformer/retinanet_groupmixformer-t_fpn_1x_coco.py',
    'configs/groupmixformer/upernet_groupmixformer-t_8xb2-160k_ade20k-512x512.py',
    'configs/groupmixformer/fpn_groupmixformer-t_8xb2-80k_ade20k-512x512.py',
]


@pytest.mark.parametrize('path', FAMILY_REPRESENTATIVES, ids=config_id)
def test_weight_decay_groups(path, one_thread):
    """The optimizer built from the config decays what the recipe says, and nothing else."""
    cfg = load_config(path)

    def expected_decay(name, param, is_norm, base_decay):
        if Path(path).name.startswith('fpn_'):
            return base_decay  # Semantic FPN recipe: decay everywhere
        if task_of(cfg) == 'mmpretrain':
            return 0. if param.ndim <= 1 else base_decay  # official: no decay on 1-D params and biases
        return 0. if is_norm else base_decay

    check_weight_decay(build_model(cfg), cfg, expected_decay, skip_frozen=True)


def test_in1k_learning_rate_curve():
    """Warm-up from 5e-7 over 20 epochs, cosine to 5e-6 at epoch 300, updated per iteration."""
    epoch_length = 4
    lrs = in1k_learning_rates(load_config('configs/groupmixformer/groupmixformer-t_8xb64_in1k.py'), 300, epoch_length)
    assert lrs[0] == pytest.approx(5e-7)
    assert lrs[20 * epoch_length] == pytest.approx(5e-4)
    # mmengine's LinearLR reaches the peak one iteration before `end`, timm's at `end`: equal up to 1/iterations
    assert lrs[10 * epoch_length] == pytest.approx((5e-7 + 5e-4) / 2, rel=2 / (20 * epoch_length))
    assert lrs[160 * epoch_length] == pytest.approx((5e-4 + 5e-6) / 2, rel=1e-3)  # cosine midpoint
    assert lrs[-1] == pytest.approx(5e-6, rel=1e-3)
    assert len(set(lrs[:20 * epoch_length])) == 20 * epoch_length  # changes every iteration
