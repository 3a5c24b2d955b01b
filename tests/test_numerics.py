"""Determinism and low-precision numerics for every backbone.

- The same seed with ``randomness.deterministic=True`` gives identical first losses in two runs of each
  backbone's demo classification config (run in-process with mmengine's Runner, two iterations each).
- Every backbone runs a bf16-autocast forward and backward on CPU at 512x512 with finite outputs and gradients,
  in the variant its demo config trains (the small variants keep this affordable on 2 CPU cores).
"""
import glob
import os

import pytest
import torch
from mmengine.registry import MODELS

import mixformer_mm  # noqa: F401
from mixformer_mm.engine import load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CLS_CONFIGS = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, 'configs/demo/*_demo_cls.py')))


def _demo_backbone(config):
    return dict(load_config(os.path.join(REPO, config)).model.backbone)


def _first_losses(config, work_dir, iters=2):
    from mmengine.runner import Runner
    cfg = load_config(os.path.join(REPO, config), {
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': 1000, 'randomness.deterministic': True,
        'randomness.seed': 0, 'default_hooks.checkpoint.interval': 1000, 'train_dataloader.num_workers': 0,
        'log_processor.window_size': 1, 'default_hooks.logger.interval': 1})
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = os.path.basename(str(work_dir))
    runner = Runner.from_cfg(cfg)
    runner.train()
    return list(runner.message_hub.get_scalar('train/loss').data[0])


@pytest.mark.parametrize('config', DEMO_CLS_CONFIGS)
def test_same_seed_deterministic_runs_give_identical_losses(config, tmp_path, demo_data):
    cwd = os.getcwd()
    os.chdir(REPO)  # the demo configs name data/demo relative to the repository
    try:
        first = _first_losses(config, tmp_path / 'a')
        second = _first_losses(config, tmp_path / 'b')
    finally:
        os.chdir(cwd)
    assert len(first) == 2 and all(torch.isfinite(torch.tensor(first)))
    assert first == second


def test_every_registered_backbone_has_a_demo_classification_config():
    from mixformer_mm.registry import MODELS as OURS
    backbones = {name for name, cls in OURS.module_dict.items() if getattr(cls, 'arch_zoo', None)}
    covered = {_demo_backbone(config)['type'] for config in DEMO_CLS_CONFIGS}
    assert backbones <= covered, f'no configs/demo/*_demo_cls.py for {sorted(backbones - covered)}'


@pytest.mark.parametrize('config', DEMO_CLS_CONFIGS)
def test_bf16_autocast_forward_backward_at_512_is_finite(config):
    torch.manual_seed(0)
    backbone = dict(_demo_backbone(config), out_indices=(0, 1, 2, 3), drop_path_rate=0.1)
    backbone.pop('final_norm', None)
    model = MODELS.build(backbone).train()
    x = torch.randn(1, 3, 512, 512)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
        loss = sum(o.float().square().mean() for o in outs)
    assert [o.shape[-1] for o in outs] == [512 // s for s in (4, 8, 16, 32)][-len(outs):]
    assert all(torch.isfinite(o.float()).all() for o in outs)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
