"""Broken data stops training naming the file and the dataset index, or (opt-in) is skipped and counted.

tools/train.py and tools/test.py run every dataset's pipeline inside :class:`GuardedPipeline`, which

- before the pipeline, refuses a local image (``img_path``) or label map (``seg_map_path``) that does not exist
  (an annotation pointing at a missing file) or that is truncated (a JPEG without its end-of-image marker, a PNG
  without its IEND chunk: OpenCV would decode the part that is there and fill the rest with grey);
- turns an error of a loading transform (an unreadable file: the decoder returns nothing) into
  :class:`BrokenDataError` naming the file, the dataset index and the cause; errors of the other transforms keep
  their type and get a note naming the file and the index.

Inside a data-loader worker the error reaches the main process as ``BrokenDataError: Caught BrokenDataError in
DataLoader worker process N`` followed by the worker's traceback with the same message.

With ``broken_data = dict(action='skip')`` in the config (``--cfg-options broken_data.action=skip``) a broken
training sample is skipped instead: the pipeline returns None, so mmengine's dataset draws another index (its
``max_refetch`` refetching), a warning names the file, and :class:`BrokenDataHook` logs how many samples were
skipped (all workers counted) whenever the count grows and at the end of training. Validation and test data are
never skipped: a metric over fewer images than the dataset holds would look like a result of the whole set.
"""
import multiprocessing
import os.path as osp
from typing import List, Optional

from mmengine.dataset import Compose
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS, TRANSFORMS

ACTIONS = ('raise', 'skip')
_SKIP_COUNTERS: List = []  # the counters of the guarded training pipelines built in this process


class BrokenDataError(RuntimeError):
    """A sample whose file is missing, truncated or unreadable."""


def _truncation(path: str) -> Optional[str]:
    """Why the local image ``path`` is truncated, or None (JPEG and PNG checked by their end markers)."""
    with open(path, 'rb') as f:
        head = f.read(8)
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 64))
        tail = f.read()
    if size == 0:
        return 'the file is empty'
    if head[:2] == b'\xff\xd8' and not tail.rstrip(b'\x00\r\n ').endswith(b'\xff\xd9'):
        return f'truncated JPEG ({size} bytes, no end-of-image marker)'
    if head == b'\x89PNG\r\n\x1a\n' and b'IEND' not in tail[-12:]:
        return f'truncated PNG ({size} bytes, no IEND chunk)'
    return None


def _is_local(path) -> bool:
    return isinstance(path, str) and '://' not in path


@TRANSFORMS.register_module()
class GuardedPipeline:
    """Run ``transforms`` (a dataset pipeline); broken files raise :class:`BrokenDataError` or are skipped."""

    def __init__(self, transforms: list, action: str = 'raise', split: str = 'train'):
        if action not in ACTIONS:
            raise ValueError(f'broken_data.action must be one of {ACTIONS}, got {action!r}')
        if action == 'skip' and split != 'train':
            raise ValueError(f"broken_data.action='skip' is for training data; {split} data is never skipped")
        self.pipeline = Compose(transforms)
        self.action, self.split = action, split
        self.skipped = multiprocessing.Value('l', 0)  # shared with the forked data-loader workers
        if action == 'skip':
            _SKIP_COUNTERS.append(self.skipped)

    def _broken(self, results: dict, problem: str, cause: Optional[BaseException] = None):
        path = results.get('img_path') or results.get('seg_map_path')
        where = f'{path} (dataset index {results.get("sample_idx")}, {self.split} data)'
        if self.action == 'skip':
            with self.skipped.get_lock():
                self.skipped.value += 1
                count = self.skipped.value
            print_log(f'broken data skipped: {where}: {problem}; another sample is drawn instead ({count} skipped '
                      f'so far)', logger='current', level=30)
            return None
        raise BrokenDataError(f'{where}: {problem}. Fix or remove the file (or its annotation), or skip broken '
                              f'training samples with --cfg-options broken_data.action=skip') from cause

    def __call__(self, results: dict):
        for key, what in (('img_path', 'image'), ('seg_map_path', 'label map')):
            path = results.get(key)
            if not _is_local(path):
                continue
            if not osp.isfile(path):
                return self._broken(dict(results, img_path=path), f'the annotation points at a missing {what} file')
            problem = _truncation(path)
            if problem:
                return self._broken(dict(results, img_path=path), f'{what} file is broken: {problem}')
        for transform in self.pipeline.transforms:
            name = type(transform).__name__
            try:
                output = transform(results)
            except Exception as error:
                if name.startswith('Load'):
                    return self._broken(results, f'{name} failed: {type(error).__name__}: {error}', error)
                error.add_note(f'in {name} on {results.get("img_path")} (dataset index {results.get("sample_idx")})')
                raise
            if output is None:
                return None
            results = output
        return results

    def __repr__(self):
        return f'GuardedPipeline(action={self.action!r}, split={self.split!r}, {self.pipeline!r})'


def skipped_total() -> int:
    return sum(counter.value for counter in _SKIP_COUNTERS)


def guard_pipelines(cfg, splits=('train_dataloader', 'val_dataloader', 'test_dataloader')) -> None:
    """Wrap the pipeline of every dataset under ``splits`` in :class:`GuardedPipeline` (``cfg.broken_data``)."""
    from mixformer_mm.engine.launch import _datasets
    action = (cfg.get('broken_data') or {}).get('action', 'raise')
    if action not in ACTIONS:
        raise ValueError(f'broken_data.action must be one of {ACTIONS}, got {action!r}')
    for key in splits:
        loader = cfg.get(key)
        if not loader:
            continue
        split = key.split('_')[0]
        for dataset, _ in _datasets(loader, key):
            pipeline = dataset.get('pipeline')
            if not isinstance(pipeline, (list, tuple)) or any(
                    isinstance(t, dict) and t.get('type') == 'GuardedPipeline' for t in pipeline):
                continue
            dataset['pipeline'] = [dict(type='GuardedPipeline', transforms=list(pipeline), split=split,
                                        action=action if split == 'train' else 'raise')]


@HOOKS.register_module()
class BrokenDataHook(Hook):
    """Log how many broken training samples were skipped, when the count grows and at the end of training."""

    priority = 'LOW'

    def __init__(self):
        self.logged = 0

    def _log(self, runner, final: bool = False) -> None:
        total = skipped_total()
        if total != self.logged or (final and total):
            runner.logger.warning(f'broken data: {total} training sample(s) skipped so far (iteration {runner.iter})')
            self.logged = total

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._log(runner)

    def after_train(self, runner) -> None:
        self._log(runner, final=True)
