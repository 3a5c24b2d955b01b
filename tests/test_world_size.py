"""Resuming on another world size (issue 20 item 2): trained on 2 processes, resumed on 1, and back on 2.

Each resumed run continues at the checkpoint's iteration with the learning rate an uninterrupted run has at every
later iteration (the schedule counts iterations), and says that the batch size and the data order change. The
losses are not compared: another world size trains other batches (mixformer_mm/engine/world_size.py).
"""
import os
import shutil
import subprocess
import sys

import pytest
import torch

import mixformer_mm  # noqa: F401  (torch.load of mmengine checkpoints)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from training_logs import logged_records  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CLS = 'configs/demo/groupmixformer-m_demo_cls.py'
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1', PYTHON=sys.executable)


def _config(folder):
    path = folder / 'world_demo_cls.py'
    path.write_text(
        f"_base_ = ['{REPO}/{DEMO_CLS}']\n"
        "log_processor = dict(window_size=1)\n"
        "default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=-1))\n"
        "train_cfg = dict(max_iters=6, val_interval=100)\n"
        "train_dataloader = dict(batch_size=8)\n"
        "param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),\n"
        "                   dict(type='CosineAnnealingLR', by_epoch=False, begin=3, end=6)]\n"
        "randomness = dict(seed=0, deterministic=True)\n")
    return str(path)


def _train(config, work_dir, processes, *extra):
    if processes == 1:
        command = [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir), *extra]
    else:
        command = ['bash', 'tools/dist_train.sh', config, str(processes), '--work-dir', str(work_dir), *extra]
    env = dict(ENV, PORT=str(29600 + os.getpid() % 300))
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return output


def _resume_copy(source_dir, checkpoint, target_dir):
    target_dir.mkdir()
    shutil.copy(source_dir / checkpoint, target_dir / checkpoint)
    (target_dir / 'last_checkpoint').write_text(str(target_dir / checkpoint))


@pytest.mark.timeout(900)
def test_resume_on_one_process_then_back_on_two_continues_iteration_and_learning_rate(tmp_path):
    config = _config(tmp_path)
    two, one, back = tmp_path / 'two', tmp_path / 'one', tmp_path / 'back'
    _train(config, two, 2)  # the uninterrupted run on 2 processes: iter_2, iter_4, iter_6
    reference = logged_records(two)
    assert sorted(reference) == list(range(1, 7))
    assert torch.load(two / 'iter_2.pth', map_location='cpu')['meta']['world_size'] == 2

    _resume_copy(two, 'iter_2.pth', one)
    output = _train(config, one, 1, '--resume')
    assert 'resumed epoch: 0, iter: 2' in output
    assert ('resuming a checkpoint trained on 2 process(es) on 1: iteration 2, the optimizer state and the '
            'learning-rate schedule continue from the checkpoint') in output
    assert 'the total batch size changes from 16 to 8' in output
    got = logged_records(one)
    assert sorted(got) == [3, 4, 5, 6]
    assert [got[i]['lr'] for i in got] == [reference[i]['lr'] for i in got]
    assert torch.load(one / 'iter_4.pth', map_location='cpu')['meta']['world_size'] == 1

    _resume_copy(one, 'iter_4.pth', back)
    output = _train(config, back, 2, '--resume')
    assert 'resumed epoch: 0, iter: 4' in output
    assert 'trained on 1 process(es) on 2' in output and 'from 8 to 16' in output
    got = logged_records(back)
    assert sorted(got) == [5, 6]
    assert [got[i]['lr'] for i in got] == [reference[i]['lr'] for i in got]
    # the learning rates differ from one iteration to the next here, so a shifted schedule could not pass
    assert len({reference[i]['lr'] for i in range(3, 7)}) == 3
