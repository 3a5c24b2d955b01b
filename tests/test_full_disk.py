"""A full disk while checkpointing (issue 20 item 4), simulated with RLIMIT_FSIZE set on the running training.

The limit is applied (``prlimit``) once iteration 2's checkpoint is on disk, and is smaller than a checkpoint, so
the write of iteration 4's checkpoint fails with EFBIG (CPython ignores SIGXFSZ, so the write raises instead of the
process being killed). The error must name the file and the reason, the earlier checkpoint must stay intact and
readable (mmengine's CheckpointHook would have deleted it before writing the new one: ``max_keep_ckpts=1``), no
temporary file may be left, and ``--resume`` afterwards continues from it.
"""
import os
import re
import resource
import subprocess
import sys

import pytest
import torch

from mixformer_mm.engine.reliability import CheckpointWriteError, atomic_torch_save, checkpoint_problem

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CLS = 'configs/demo/groupmixformer-m_demo_cls.py'
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1')
LIMIT = 1 << 20  # 1 MiB: the logs stay below it, a checkpoint of the demo model (~30 MiB) does not


def _config(folder):
    path = folder / 'disk_demo_cls.py'
    path.write_text(
        f"_base_ = ['{REPO}/{DEMO_CLS}']\n"
        "log_processor = dict(window_size=1)\n"
        "default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=1))\n"
        "train_cfg = dict(max_iters=6, val_interval=100)\n"
        "train_dataloader = dict(batch_size=16)\n"
        "randomness = dict(seed=0, deterministic=True)\n")
    return str(path)


@pytest.mark.timeout(600)
def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one_and_resume_works(tmp_path):
    config, work_dir = _config(tmp_path), tmp_path / 'work'
    job = subprocess.Popen([sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir)], cwd=REPO, env=ENV,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in job.stdout:
        lines.append(line)
        if 'Iter(train) [3/6]' in line:  # logged after iteration 2's checkpoint was written, before iteration 4's
            resource.prlimit(job.pid, resource.RLIMIT_FSIZE, (LIMIT, LIMIT))
            break
    lines += job.stdout.readlines()
    output = ''.join(lines)
    assert job.wait(timeout=120) != 0, output[-3000:]
    previous, failed = work_dir / 'iter_2.pth', work_dir / 'iter_4.pth'
    message = re.search(r'CheckpointWriteError: (.*)', output)
    assert message, output[-3000:]
    assert (f'cannot write checkpoint {failed}: File too large (errno EFBIG): this process may write files of at '
            f'most {LIMIT} bytes (RLIMIT_FSIZE' in message.group(1))
    assert 'the earlier checkpoints are intact' in message.group(1)

    assert not failed.exists() and checkpoint_problem(str(previous)) is None
    assert torch.load(previous, map_location='cpu')['meta']['iter'] == 2
    assert (work_dir / 'last_checkpoint').read_text().strip() == str(previous)
    assert sorted(n for n in os.listdir(work_dir) if n.endswith(('.pth', '.tmp'))) == ['iter_2.pth']

    resumed = subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir), '--resume'],
                             cwd=REPO, env=ENV, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 2' in resumed.stdout + resumed.stderr
    assert sorted(n for n in os.listdir(work_dir) if n.endswith('.pth')) == ['iter_6.pth']


def test_no_space_left_names_the_file_and_the_free_space(tmp_path, monkeypatch):
    """ENOSPC (a really full file system) reaches the error with the free space of the checkpoint's file system."""
    import builtins
    import errno
    real_open = builtins.open

    class FullFile:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_open(path, mode='r', *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return FullFile(handle) if 'w' in mode and str(path).endswith('.tmp') else handle

    target = tmp_path / 'iter_8.pth'
    monkeypatch.setattr(builtins, 'open', full_open)
    with pytest.raises(CheckpointWriteError, match=rf'cannot write checkpoint {target}: No space left on device '
                                                   rf'\(errno ENOSPC\): [0-9.]+ MiB free on the file system of'):
        atomic_torch_save({'w': torch.ones(4)}, str(target))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []
