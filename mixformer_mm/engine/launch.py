"""What tools/train.py and tools/test.py share: reading the config, checking data, distributed set-up."""
import os
import os.path as osp
from typing import Iterator, List, Optional, Tuple

import torch
from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported for the tools)

DEMO_ROOT = 'data/demo'
DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


class DataNotFoundError(FileNotFoundError):
    """A dataset root or annotation file named by the config does not exist."""


class EmptyImageListError(ValueError):
    """An annotation file that lists no image."""


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    if not osp.isfile(path):
        hint = ''
        stem = osp.splitext(osp.basename(path))[0]
        nearby = _close_configs(stem)
        if nearby:
            hint = ' Did you mean: ' + ', '.join(nearby) + '?'
        raise FileNotFoundError(f'config file {path} does not exist.{hint}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def _close_configs(stem: str, root: str = 'configs') -> List[str]:
    import difflib
    if not osp.isdir(root):
        return []
    candidates = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith('.py') and not folder.split(os.sep)[-1].startswith('_'):
                candidates[osp.splitext(name)[0]] = osp.join(folder, name)
    return [candidates[c] for c in difflib.get_close_matches(stem, list(candidates), n=3, cutoff=0.6)]


def _datasets(node, where: str) -> Iterator[Tuple[dict, str]]:
    """Every dataset config under ``node`` (wrappers such as RepeatDataset/ConcatDataset included)."""
    if isinstance(node, dict):
        if 'type' in node and ('data_root' in node or 'ann_file' in node or 'data_prefix' in node):
            yield node, where
        for key in ('dataset', 'datasets'):
            child = node.get(key)
            if isinstance(child, (list, tuple)):
                for i, item in enumerate(child):
                    yield from _datasets(item, f'{where}.{key}[{i}]')
            elif child is not None:
                yield from _datasets(child, f'{where}.{key}')


def _data_paths(dataset: dict) -> List[Tuple[str, str]]:
    """(field, path) pairs a dataset reads, resolved the way mmengine's BaseDataset resolves them."""
    root = dataset.get('data_root') or ''
    paths = []
    if root:
        paths.append(('data_root', root))
    ann_file = dataset.get('ann_file')
    if ann_file:
        paths.append(('ann_file', ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)))
    return paths


def check_data(cfg: Config, splits: Tuple[str, ...] = DATALOADER_KEYS) -> None:
    """Generate the embedded demo data when a config uses it; otherwise fail early, naming a missing path."""
    datasets = [(ds, where) for key in splits if cfg.get(key) for ds, where in _datasets(cfg[key], key)]
    if any(_under_demo_root(path) for ds, _ in datasets for _, path in _data_paths(ds)):
        from mixformer_mm.datasets import ensure_demo_data
        ensure_demo_data(DEMO_ROOT)
    for dataset, where in datasets:
        for field, path in _data_paths(dataset):
            if field == 'ann_file' and osp.exists(path):
                _check_annotation_file(path, where, str(dataset.get('type', '')))
            if not osp.exists(path):
                raise DataNotFoundError(
                    f'{where}.{field}: {path} does not exist (working directory {os.getcwd()}). Put the dataset '
                    f'there, or point the config at it, e.g. --cfg-options {where}.data_root=/path/to/data. '
                    f'To try the tools without any download, use a config under configs/demo/ (embedded demo data).')


def _check_annotation_file(path: str, where: str, dataset_type: str) -> None:
    """A JSON annotation file must parse; a COCO-style one must have its three lists. Large files: syntax only."""
    import json
    if not osp.isfile(path):
        return
    if path.endswith('.txt') and osp.getsize(path) < (64 << 20):
        with open(path, 'rb') as f:
            if not any(line.strip() for line in f):  # mmengine would fail on an empty list with a numpy message
                raise EmptyImageListError(f'{where}.ann_file: {path} lists no image (the file has no non-blank line)')
    if not path.endswith('.json'):
        return
    with open(path, 'rb') as f:
        head = f.read(1 << 20).lstrip()
    if not head.startswith(b'{'):
        raise ValueError(f'{where}.ann_file: {path} is not a JSON object (it starts with {head[:40]!r})')
    if osp.getsize(path) > (64 << 20):
        return
    try:
        with open(path) as f:
            content = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f'{where}.ann_file: {path} is not valid JSON: {error}') from None
    if 'coco' in dataset_type.lower() or 'images' in content:
        absent = [k for k in ('images', 'annotations', 'categories') if not isinstance(content.get(k), list)]
        if absent:
            raise ValueError(f'{where}.ann_file: {path} is not a COCO annotation file: no list {absent} '
                             f'(it has keys {sorted(content)[:8]})')
        if not content['images']:
            raise EmptyImageListError(f'{where}.ann_file: {path} lists no image (its "images" list is empty)')


def check_model_types(cfg: Config) -> None:
    """``model.type`` and ``model.backbone.type`` must be registered; suggest close names when not."""
    import difflib
    import importlib

    from mmengine.registry import MODELS, init_default_scope
    model = cfg.get('model')
    if not isinstance(model, dict):
        return
    scope = cfg.get('default_scope')
    if scope:
        init_default_scope(scope)
        try:  # a codebase's registry children exist once its registry module is imported
            importlib.import_module(f'{scope}.registry')
        except ImportError:
            pass
    registry = MODELS
    if scope and scope in MODELS.children:
        registry = MODELS.children[scope]
    for where, node in (('model', model), ('model.backbone', model.get('backbone'))):
        if not isinstance(node, dict) or not isinstance(node.get('type'), str):
            continue
        name = node['type']
        if registry.get(name) is not None:
            continue
        known = set(registry.module_dict) | set(MODELS.module_dict)
        close = difflib.get_close_matches(name.split('.')[-1], sorted(known), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ''
        raise KeyError(f"{where}.type={name!r} is not a registered model in scope {scope!r}.{hint} (mixformer_mm's "
                       f"backbones need custom_imports=dict(imports=['mixformer_mm']) in the config.)")


def _under_demo_root(path: str) -> bool:
    return osp.normpath(path).startswith(osp.normpath(DEMO_ROOT))


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Make ``--launcher pytorch`` work on machines without GPUs (gloo, DDP without device ids).

    mmengine's own initialisation selects a CUDA device for every process, which fails on a CPU-only machine, so
    the process group is created here first; the Runner then finds it initialised and uses it.
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise RuntimeError(f'--launcher {launcher} on a machine without GPUs is not supported; use torchrun '
                           '(tools/dist_train.sh), which uses the pytorch launcher')
    import torch.distributed as dist
    if not dist.is_initialized():
        timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout', 1800)
        from datetime import timedelta
        dist.init_process_group(backend='gloo', timeout=timedelta(seconds=timeout))
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
