"""Helpers shared by the config tests (tests/test_configs_*.py): naming, loading and building a config's model,
and the checks every backbone's configs must pass (the model runs, the optimizer decays what the recipe says)."""
import copy
import functools
import importlib.util
import os
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

ROOT = Path(__file__).resolve().parents[1]
TASKS = ('mmpretrain', 'mmdet', 'mmseg')


def config_id(path: str, prefix: str = 'configs/') -> str:
    """The test id of a config: its path without `prefix` and `.py`."""
    return path[len(prefix):-len('.py')]


def arch_in_name(path: str, pattern: str, model: str) -> str:
    """The variant a config's file name names, as group 1 of `pattern`."""
    match = re.search(pattern, Path(path).name)
    assert match, f'{path}: the file name does not name a {model} variant'
    return match.group(1)


def gpus_and_batch(path: str):
    """(GPUs, images per GPU) from a file name's `_8xb64_`, or None where the name has none."""
    match = re.search(r'_(\d+)xb(\d+)[-_]', Path(path).name)
    return (int(match.group(1)), int(match.group(2))) if match else None


@functools.lru_cache(maxsize=None)
def load_config(path: str) -> Config:
    # Config.fromfile runs the config's custom_imports: this fails unless `mixformer_mm` imports.
    return Config.fromfile(str(ROOT / path))


def pretrained_checkpoint(init_cfg) -> str:
    """The file name of a backbone's Pretrained init_cfg, checked to be the ImageNet classifier's `backbone.` part
    at an absolute path in the repository's checkpoints/ folder, as every dense config loads it."""
    assert init_cfg is not None and init_cfg['type'] == 'Pretrained', f'not a Pretrained init_cfg: {init_cfg}'
    assert init_cfg.get('prefix') == 'backbone.', f'the classifier\'s backbone. part is not selected: {init_cfg}'
    path = Path(init_cfg['checkpoint'])
    assert path.is_absolute(), f'{path} depends on the current directory'
    resolved = Path(os.path.normpath(path))
    assert resolved.parent == ROOT / 'checkpoints', f'{path} is not in {ROOT / "checkpoints"}'
    return resolved.name


def task_of(cfg: Config) -> str:
    assert cfg.default_scope in TASKS, cfg.default_scope
    return cfg.default_scope


def check_imports_mixformer_mm(cfg: Config, path: str):
    """The config imports our package itself (custom_imports, failing loudly) and names one of the three codebases."""
    imports = cfg.get('custom_imports')
    assert imports is not None and 'mixformer_mm' in imports['imports'], f'{path}: no custom_imports of mixformer_mm'
    assert imports.get('allow_failed_imports', False) is False
    task_of(cfg)


def check_dump_round_trip(cfg: Config, path: str, tmp_path: Path):
    """What the runner writes to its work_dir (Config.dump) reloads to the same training settings."""
    dumped = tmp_path / 'dumped.py'
    cfg.dump(str(dumped))
    reloaded = Config.fromfile(str(dumped), import_custom_modules=False)
    for key in ('model', 'optim_wrapper', 'param_scheduler', 'train_cfg', 'custom_imports', 'default_scope'):
        assert reloaded.to_dict()[key] == cfg.to_dict()[key], f'{path}: {key} changes when dumped and reloaded'


def build_model(cfg: Config):
    """The config's model, built with the registry of its codebase (default_scope), in eval mode."""
    from mmengine.registry import init_default_scope

    import mixformer_mm  # noqa: F401  (registers the backbones)
    task = task_of(cfg)
    init_default_scope(task)
    if task == 'mmpretrain':
        from mmpretrain.registry import MODELS
    elif task == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS.build(copy.deepcopy(cfg.model)).eval()


@functools.lru_cache(maxsize=2)
def cached_model(path: str):
    """build_model of a config path, for tests that only read the model. Only the last two are kept: holding
    every config's model for the whole session took over 10 GB of memory."""
    return build_model(load_config(path))


def check_model_runs(model, cfg: Config, backbone_type, channels, size: int):
    """The model's backbone is a `backbone_type` of stage widths `channels`. Runs the model on one random `size` x
    `size` image in eval mode: the backbone gives the configured outputs at strides 4..32, then the neck and heads of
    the config's task give outputs of their configured shapes."""
    assert isinstance(model.backbone, backbone_type)
    assert model.backbone.embed_dims == channels
    out_indices = tuple(cfg.model.backbone.out_indices)
    task = task_of(cfg)
    torch.manual_seed(0)
    inputs = torch.randn(1, 3, size, size)
    with torch.no_grad():
        feats = model.backbone(inputs)
        expected = [(1, channels[i], size // 2**(i + 2), size // 2**(i + 2)) for i in out_indices]
        assert [f.shape for f in feats] == expected
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


def check_weight_decay(model, cfg: Config, expected_decay, skip_frozen: bool = False) -> dict:
    """Builds the config's optimizer for `model` and checks each parameter's weight decay against
    `expected_decay(name, param, is_norm, base_decay)`. Returns {id(parameter): weight decay}."""
    from mmengine.optim import build_optim_wrapper
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    decay_of = {id(p): group['weight_decay'] for group in optim_wrapper.optimizer.param_groups for p in group['params']}
    norm_params = {id(p) for m in model.modules() if isinstance(m, (_BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm))
                   for p in m.parameters(recurse=False)}
    base_decay = cfg.optim_wrapper.optimizer.weight_decay
    for name, param in model.named_parameters():
        if skip_frozen and not param.requires_grad:
            continue
        expected = expected_decay(name, param, id(param) in norm_params, base_decay)
        assert decay_of[id(param)] == pytest.approx(expected), \
            f'{cfg.filename}: {name} has weight decay {decay_of[id(param)]}'
    return decay_of


def load_script(relative_path: str, name: str):
    """A repository script (e.g. tools/analysis_tools/get_flops.py) imported as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def in1k_learning_rates(cfg: Config, epochs: int, epoch_length: int = 4) -> list:
    """The learning rate of each iteration of `epochs` epochs (and the one after the last) under the config's
    warm-up + cosine schedulers, stepped as the runner does; the config's first lr is that of the optimizer."""
    from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR
    from mmengine.registry import PARAM_SCHEDULERS, init_default_scope
    init_default_scope(cfg.default_scope)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = [PARAM_SCHEDULERS.build(c, default_args=dict(optimizer=optimizer, epoch_length=epoch_length))
                  for c in copy.deepcopy(cfg.param_scheduler)]
    assert [type(s) for s in schedulers] == [LinearLR, CosineAnnealingLR]
    lrs = []
    for _ in range(epochs * epoch_length):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    lrs.append(optimizer.param_groups[0]['lr'])
    return lrs
