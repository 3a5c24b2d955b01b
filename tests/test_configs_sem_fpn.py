"""The Semantic FPN ADE20K configs of GroupMixFormer, DGT and MAFormer follow the PVT/PoolFormer line that they
name: 80k iterations at 8 GPUs x 2 images with AdamW lr 1e-4 (PVT; the same images and lr per image as PoolFormer's
40k x 32 at lr 2e-4), and test images resized to (2048, 512) and then to multiples of 32 (ResizeToMultiple).
GLNet's Semantic FPN configs follow BiFormer's own recipe instead (tests/test_configs_glnet.py)."""
from pathlib import Path

import numpy as np
import pytest

from tests.config_checks import ROOT, config_id, gpus_and_batch, load_config

CONFIGS = sorted(str(p.relative_to(ROOT)) for model in ('groupmixformer', 'dgt', 'maformer')
                 for p in (ROOT / 'configs' / model).glob('fpn_*.py'))
POOLFORMER_IMAGES = 40000 * 32  # PoolFormer: 40k iterations x 8 GPUs x 4 images


def test_every_model_has_three_semantic_fpn_configs():
    assert len(CONFIGS) == 9, CONFIGS
    assert all(Path(p).name.endswith('_8xb2-80k_ade20k-512x512.py') for p in CONFIGS), CONFIGS


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_schedule_is_pvts(path):
    cfg = load_config(path)
    gpus, per_gpu = gpus_and_batch(path)
    assert (gpus, per_gpu) == (8, 2) and cfg.train_dataloader.batch_size == per_gpu
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 80000
    assert cfg.train_cfg.max_iters * gpus * per_gpu == POOLFORMER_IMAGES
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW' and optimizer.lr == 1e-4 and optimizer.weight_decay == 1e-4
    assert optimizer.lr / (gpus * per_gpu) == pytest.approx(2e-4 / 32)  # PoolFormer's lr per image
    assert 'clip_grad' not in cfg.optim_wrapper or cfg.optim_wrapper.clip_grad is None
    (poly, ) = cfg.param_scheduler
    assert (poly.type, poly.power, poly.eta_min, poly.begin, poly.end, poly.by_epoch) == \
        ('PolyLR', 0.9, 0., 0, 80000, False)


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_test_images_are_resized_to_multiples_of_32(path):
    """The val and test pipelines, run on a 375x500 image (an ADE20K-like size), give 512x704 (the resize gives
    512x683, which ResizeToMultiple rounds up to the next multiple of 32)."""
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope

    import mixformer_mm  # noqa: F401
    cfg = load_config(path)
    init_default_scope('mmseg')
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        types = [t.type for t in loader.dataset.pipeline]
        assert types == ['LoadImageFromFile', 'Resize', 'ResizeToMultiple', 'LoadAnnotations', 'PackSegInputs']
        resizes = Compose([t for t in loader.dataset.pipeline if t.type in ('Resize', 'ResizeToMultiple')])
        img = np.zeros((375, 500, 3), np.uint8)
        out = resizes(dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2]))
        assert out['img'].shape[:2] == (512, 704) and out['img_shape'] == (512, 704)
