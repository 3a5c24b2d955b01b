"""Every config (configs/**, demos included, _base_ excluded) is ready for DDP: one training step of its full model
gives a gradient to every parameter that requires one.

mmengine wraps the model in DistributedDataParallel with ``find_unused_parameters=False``; a parameter that takes
no part in the loss (an output norm of a stage the neck never reads, a head that does not enter the summed loss)
makes the second iteration fail on every rank. Here each config's model is built with the registry of its codebase,
put in training mode, and run once through ``model(inputs, data_samples, mode='loss')`` on a batch of two tiny
synthetic images with real targets: class labels (ImageNet), boxes, labels and masks (COCO), label maps (ADE20K).
The losses are summed by ``model.parse_losses`` as the runner does, backpropagated, and every parameter with
``requires_grad`` and no ``.grad`` is named.

Each model is the config's own (variant, ``out_indices``, extra norms, neck, heads, losses, drop path, norm
settings), with two differences that do not decide which parameters are used: the pretrained checkpoints are not
loaded (the modules' default initialisation), and the R-CNN samplers draw ROIS_PER_IMAGE RoIs per image from at
most PROPOSALS proposals, instead of 512 from 1000-2000 (the mask head still sees positives: the ground-truth boxes
are added to the proposals). Configs whose models are then equal (e.g. Mask R-CNN 1x and ms-3x) share one build
and one step. On the 2-core machine the 86 configs take about 100 s with one thread, most of it in loading
(mmdet's and mmseg's parent configs) and building.
"""
import copy
import json

import numpy as np
import pytest
import torch

from tests.config_checks import ROOT, config_id, load_config, task_of

CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)

BATCH = 2  # BatchNorm in training mode needs more than one value per channel (UperNet's 1x1 pooling branch)
SIZE = 64
ROIS_PER_IMAGE = 16
PROPOSALS = 100


def _cap_sampling(train_cfg) -> None:
    """Fewer RoIs and proposals per image in an R-CNN's training settings (in place)."""
    if not train_cfg:
        return
    if 'rpn_proposal' in train_cfg:
        train_cfg['rpn_proposal'].update(nms_pre=PROPOSALS, max_per_img=PROPOSALS)
    rcnn = train_cfg.get('rcnn')
    for stage in (rcnn if isinstance(rcnn, list) else [rcnn] if rcnn else []):
        stage['sampler']['num'] = ROIS_PER_IMAGE


def _test_model_cfg(path: str) -> dict:
    """The config's model settings as this test builds them (see the module docstring)."""
    cfg = load_config(path)
    model = copy.deepcopy(cfg.model.to_dict())
    model['backbone'].pop('init_cfg', None)  # no checkpoint is loaded
    _cap_sampling(model.get('train_cfg'))
    # not used by model(inputs, data_samples, mode='loss'): the batch below is already normalised and padded
    model.pop('data_preprocessor', None)
    return model


def _batch(task: str):
    """A batch of BATCH random SIZE x SIZE images with targets of the task."""
    inputs = torch.randn(BATCH, 3, SIZE, SIZE)
    shape = (SIZE, SIZE)
    samples = []
    for k in range(BATCH):
        if task == 'mmpretrain':
            from mmpretrain.structures import DataSample
            samples.append(DataSample().set_gt_label(k))
        elif task == 'mmdet':
            from mmdet.structures import DetDataSample
            from mmdet.structures.mask import BitmapMasks
            from mmengine.structures import InstanceData
            sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                                 batch_input_shape=shape, scale_factor=(1., 1.)))
            boxes = torch.tensor([[4., 6., 36., 40.], [20. + k, 16., 60., 58.]])
            masks = np.zeros((len(boxes), SIZE, SIZE), dtype=np.uint8)
            for mask, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist()):
                mask[y1:y2, x1:x2] = 1
            sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([0, 1]),
                                               masks=BitmapMasks(masks, SIZE, SIZE))
            samples.append(sample)
        else:
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            sample = SegDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape))
            sample.gt_sem_seg = PixelData(data=torch.randint(0, 4, (1, SIZE, SIZE)))
            samples.append(sample)
    return inputs, samples


def _parameters_without_gradient(task: str, model_cfg: dict):
    """Build the model, run one training step; return (the summed loss, names of trainable parameters that got
    no gradient)."""
    from mmengine.registry import init_default_scope

    import mixformer_mm  # noqa: F401  (registers the backbones)
    init_default_scope(task)
    if task == 'mmpretrain':
        from mmpretrain.registry import MODELS
    elif task == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    from mmengine.config import ConfigDict
    model = MODELS.build(ConfigDict(copy.deepcopy(model_cfg)))  # detectors read train_cfg.rpn as attributes
    model.train()
    inputs, samples = _batch(task)
    losses = model(inputs, samples, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    return loss.item(), missing


_RESULTS = {}  # the test's model settings (as JSON) -> (loss, parameters without gradient)


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_one_training_step_reaches_every_trainable_parameter(path, one_thread):
    cfg = load_config(path)
    task = task_of(cfg)
    model_cfg = _test_model_cfg(path)
    key = json.dumps([task, model_cfg], sort_keys=True, default=repr)
    if key not in _RESULTS:
        _RESULTS[key] = _parameters_without_gradient(task, model_cfg)
    loss, missing = _RESULTS[key]
    assert np.isfinite(loss), f'{path}: loss {loss}'
    assert not missing, (f'{path}: {len(missing)} trainable parameters get no gradient in a training step, so '
                         f'DDP (find_unused_parameters=False) fails: {missing}')


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_backbone_returns_only_what_the_model_reads(path):
    """The backbone is asked only for the stages that the neck or heads use (mmdet's Swin RetinaNet convention):
    an FPN starts at the first returned stage and takes all of them; a classifier pools one stage."""
    cfg = load_config(path)
    model = cfg.model
    out_indices = tuple(model.backbone.out_indices)
    if task_of(cfg) == 'mmpretrain':
        assert len(out_indices) == 1, f'{path}: the classifier reads only the last of {out_indices}'
        return
    neck = model.get('neck')
    if neck is not None and neck.type == 'FPN':
        assert neck.get('start_level', 0) == 0 and neck.get('end_level', -1) == -1, \
            f'{path}: FPN levels {neck.get("start_level", 0)}..{neck.get("end_level", -1)} of out_indices ' \
            f'{out_indices}: the backbone computes outputs the FPN skips'
        assert len(neck.in_channels) == len(out_indices), (path, neck.in_channels, out_indices)
    else:
        assert neck is None, f'{path}: neck {neck.type}'
        read = set(model.decode_head.get('in_index', range(len(out_indices))))
        if model.get('auxiliary_head') is not None:
            read.add(model.auxiliary_head.in_index % len(out_indices))
        assert read == set(range(len(out_indices))), f'{path}: the heads read outputs {read} of {out_indices}'
