"""Shortened demos: train GroupMixFormer-M from scratch through tools/train.py and check that it learned.

Each test runs a demo config (configs/demo/) for a fraction of its schedule on the embedded demo data, then reads
the validation metric from the run's JSON log and asserts that it is clearly above what a trivial model scores.
About 4 minutes in all on 2 CPU cores.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')

pytestmark = pytest.mark.timeout(900)


def _short_schedule(iters: int, warmup: int) -> list:
    """cfg-options shortening a demo: ``iters`` iterations, validation and checkpoint at the end."""
    return [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'param_scheduler.0.end={warmup}', f'param_scheduler.1.begin={warmup}', f'param_scheduler.1.end={iters}',
        f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=10',
    ]


def _train(config: str, work_dir: str, cfg_options: list) -> dict:
    """Run tools/train.py and return the last validation metrics it logged (vis_data/scalars.json)."""
    cmd = [sys.executable, TRAIN, osp.join('configs', 'demo', config), '--work-dir', work_dir, '--cfg-options']
    cmd += cfg_options
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)
    assert proc.returncode == 0, f'{" ".join(cmd)} failed:\n{proc.stdout[-5000:]}'
    logs = sorted(
        osp.join(root, name) for root, _, files in os.walk(work_dir) for name in files
        if name == 'scalars.json' and osp.basename(root) == 'vis_data')
    assert logs, f'no vis_data/scalars.json under {work_dir}'
    with open(logs[-1]) as f:
        records = [json.loads(line) for line in f if line.strip()]
    metrics = [r for r in records if 'lr' not in r and 'loss' not in r]  # validation records
    assert metrics, f'no validation metrics in {logs[-1]}'
    ckpts = sorted(n for n in os.listdir(work_dir) if n.endswith('.pth'))
    assert ckpts, f'no checkpoint saved in {work_dir}'
    _check_test_tool(config, osp.join(work_dir, ckpts[-1]), work_dir, metrics[-1])
    return metrics[-1]


def _check_test_tool(config: str, checkpoint: str, work_dir: str, val_metrics: dict) -> None:
    """tools/test.py on the trained checkpoint reproduces the final validation metrics and writes --out."""
    out = osp.join(work_dir, 'predictions.pkl')
    cmd = [sys.executable, TEST, osp.join('configs', 'demo', config), checkpoint, '--work-dir',
           osp.join(work_dir, 'test'), '--out', out]
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)
    assert proc.returncode == 0, f'{" ".join(cmd)} failed:\n{proc.stdout[-5000:]}'
    assert osp.getsize(out) > 0 and not [n for n in os.listdir(work_dir) if '.tmp' in n]
    logs = [osp.join(root, name) for root, _, files in os.walk(osp.join(work_dir, 'test')) for name in files
            if name.endswith('.json') and osp.basename(root) != 'vis_data']
    assert logs, 'tools/test.py wrote no metrics log'
    with open(sorted(logs)[-1]) as f:
        test_metrics = [json.loads(line) for line in f if line.strip()][-1]
    for key, value in val_metrics.items():
        if '/' in key or key in ('mIoU', 'aAcc', 'mAcc'):
            assert test_metrics[key] == pytest.approx(value, abs=1e-3), key


def test_demo_classification(tmp_path):
    metrics = _train('groupmixformer-m_demo_cls.py', str(tmp_path / 'cls'), _short_schedule(100, 10))
    top1 = metrics['accuracy/top1']
    print('demo cls (100 iterations): top-1', top1)
    assert top1 > 1.5 * 25.0, metrics  # 4 balanced classes: chance is 25%


def test_demo_detection(tmp_path):
    metrics = _train('groupmixformer-m_demo_det.py', str(tmp_path / 'det'), _short_schedule(80, 20))
    print('demo det (80 iterations): bbox mAP', metrics['coco/bbox_mAP'], 'segm mAP', metrics['coco/segm_mAP'])
    # an untrained Mask R-CNN scores 0.000; the full demo reaches about 0.37
    assert metrics['coco/bbox_mAP'] > 0.03, metrics
    assert metrics['coco/segm_mAP'] > 0.03, metrics


def test_demo_segmentation(tmp_path):
    metrics = _train('groupmixformer-m_demo_seg.py', str(tmp_path / 'seg'), _short_schedule(120, 15))
    print('demo seg (120 iterations): mIoU', metrics['mIoU'])
    # predicting background everywhere gives mIoU = (background IoU ~0.8) / 4 classes, about 21%
    assert metrics['mIoU'] > 30.0, metrics
