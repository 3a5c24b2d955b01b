"""Bad inputs refused with an error naming the image and the problem, before they reach the model.

:class:`InputCheckHook` (one of tools/train.py's and tools/test.py's default hooks) checks

- before each train/val/test loop, that the model's ``num_classes`` (classification head, detection box and mask
  heads, segmentation decode and auxiliary heads) equals the number of classes of the dataset it runs on;
- before each iteration, on the batch as the data loader hands it over (before the data preprocessor), that every
  image has the channel count the model expects (the data preprocessor's mean/std, else the backbone's
  ``in_channels``) and that a floating-point image holds no NaN or infinite value.

Without it a 1-channel image is silently broadcast to 3 channels by the preprocessor's 3-channel mean, a 4-channel
one fails inside the normalisation with a tensor-size message, a NaN pixel turns into NaN predictions (or a NaN
loss that names no image), and a dataset with more classes than the head fails deep in the loss with an index
error (with fewer, silently trains a head with unused outputs).
"""
from typing import Iterator, Optional, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


class NonFiniteInputError(ValueError):
    """An input image holds NaN or infinite values."""


class ChannelMismatchError(ValueError):
    """An input image has another number of channels than the model expects."""


class NumClassesMismatchError(ValueError):
    """The model's num_classes disagrees with the number of classes of its dataset."""


def _unwrap(model):
    return model.module if hasattr(model, 'module') else model


def expected_channels(model) -> Optional[Tuple[int, str]]:
    """(channels, where they come from) that ``model`` expects of an input image, or None when it does not say."""
    model = _unwrap(model)
    preprocessor = getattr(model, 'data_preprocessor', None)
    mean = getattr(preprocessor, 'mean', None)
    if isinstance(mean, torch.Tensor) and mean.ndim >= 1 and mean.numel() > 1:
        return int(mean.shape[0]), f'the data preprocessor normalises {int(mean.shape[0])} channels (mean/std)'
    backbone = getattr(model, 'backbone', None)
    in_channels = getattr(backbone, 'in_channels', None)
    if isinstance(in_channels, int):
        return in_channels, f'{type(backbone).__name__}.in_channels={in_channels}'
    return None


def _class_heads(model) -> Iterator[Tuple[str, object]]:
    """(config key, module) of each head of ``model`` that has a ``num_classes``."""
    model = _unwrap(model)
    for name in ('head', 'bbox_head', 'decode_head', 'auxiliary_head'):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.ModuleList):
            for i, item in enumerate(head):
                yield f'model.{name}[{i}]', item
        elif head is not None:
            yield f'model.{name}', head
    roi_head = getattr(model, 'roi_head', None)
    for name in ('bbox_head', 'mask_head'):
        head = getattr(roi_head, name, None)
        if isinstance(head, torch.nn.ModuleList):  # cascade heads
            for i, item in enumerate(head):
                yield f'model.roi_head.{name}[{i}]', item
        elif head is not None:
            yield f'model.roi_head.{name}', head


def check_num_classes(model, dataset, loader_name: str) -> None:
    """Raise :class:`NumClassesMismatchError` naming the head, its num_classes and the dataset's classes."""
    metainfo = getattr(dataset, 'metainfo', None) or {}
    classes = metainfo.get('classes')
    if not classes:
        return
    for where, head in _class_heads(model):
        num_classes = getattr(head, 'num_classes', None)
        if not isinstance(num_classes, int) or num_classes == len(classes):
            continue
        if num_classes == 1 and len(classes) == 2 and getattr(head, 'out_channels', None) == 1:
            continue  # mmseg's binary segmentation: one sigmoid output for two classes
        shown = ', '.join(map(str, list(classes)[:8])) + (', ...' if len(classes) > 8 else '')
        raise NumClassesMismatchError(
            f'{where}.num_classes={num_classes} but {loader_name}\'s {type(dataset).__name__} has {len(classes)} '
            f'classes ({shown}). Set {where}.num_classes={len(classes)} (and data_preprocessor.num_classes for '
            f'mmpretrain), or give the dataset metainfo=dict(classes=...) with the {num_classes} classes the model '
            f'predicts.')


def _samples(data_batch) -> Iterator[Tuple[torch.Tensor, object]]:
    inputs = data_batch.get('inputs') if isinstance(data_batch, dict) else None
    samples = data_batch.get('data_samples') if isinstance(data_batch, dict) else None
    if isinstance(inputs, torch.Tensor):
        inputs = list(inputs) if inputs.ndim == 4 else [inputs]
    if not isinstance(inputs, (list, tuple)):
        return
    samples = list(samples) if isinstance(samples, (list, tuple)) else [None] * len(inputs)
    for image, sample in zip(inputs, samples + [None] * (len(inputs) - len(samples))):
        if isinstance(image, torch.Tensor):
            yield image, sample


def describe_sample(sample, position: int) -> str:
    meta = getattr(sample, 'metainfo', None) or {}
    parts = []
    if meta.get('img_path') is not None:
        parts.append(str(meta['img_path']))
    if meta.get('sample_idx') is not None:
        parts.append(f'dataset index {meta["sample_idx"]}')
    parts.append(f'batch position {position}')
    return 'image ' + ', '.join(parts)


def check_batch(model, data_batch, where: str) -> None:
    """Refuse a batch holding an image with the wrong channel count or NaN/Inf values, naming the image."""
    expected = expected_channels(model)
    for position, (image, sample) in enumerate(_samples(data_batch)):
        channels = 1 if image.ndim == 2 else int(image.shape[-3])
        if expected is not None and channels != expected[0]:
            raise ChannelMismatchError(
                f'{where}: {describe_sample(sample, position)} has {channels} channel(s) (shape '
                f'{tuple(image.shape)}) but the model expects {expected[0]}: {expected[1]}. Convert the image, read '
                f"it with LoadImageFromFile's color_type='color' (3 channels), or configure the model for "
                f'{channels} channel(s).')
        if image.is_floating_point() and not bool(torch.isfinite(image).all()):
            nan, inf = int(torch.isnan(image).sum()), int(torch.isinf(image).sum())
            raise NonFiniteInputError(
                f'{where}: {describe_sample(sample, position)} holds {nan} NaN and {inf} infinite value(s) '
                f'(shape {tuple(image.shape)}, {image.dtype}). Fix or remove the image; the model would turn them '
                f'into NaN outputs.')


@HOOKS.register_module()
class InputCheckHook(Hook):
    """Check class counts before each loop and every batch's images before each iteration (see module doc)."""

    priority = 'VERY_HIGH'

    def __init__(self, check_batches: bool = True):
        self.check_batches = check_batches

    def _check_classes(self, runner, loader_name: str) -> None:
        loader = getattr(runner, loader_name, None)
        dataset = getattr(loader, 'dataset', None)
        if dataset is not None:
            check_num_classes(runner.model, dataset, loader_name)

    def before_train(self, runner) -> None:
        self._check_classes(runner, 'train_dataloader')

    def before_val(self, runner) -> None:
        self._check_classes(runner, 'val_dataloader')

    def before_test(self, runner) -> None:
        self._check_classes(runner, 'test_dataloader')

    def _check(self, runner, data_batch, mode: str, batch_idx: int) -> None:
        if self.check_batches:
            where = f'{mode} iteration {runner.iter + 1}' if mode == 'train' else f'{mode} batch {batch_idx}'
            check_batch(runner.model, data_batch, where)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._check(runner, data_batch, 'train', batch_idx)

    def before_val_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._check(runner, data_batch, 'val', batch_idx)

    def before_test_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._check(runner, data_batch, 'test', batch_idx)
