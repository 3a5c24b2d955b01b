"""Two nodes on one machine (issue 20 item 5): tools/dist_train.sh launched twice, NNODES=2 and NODE_RANK=0/1, one
process each, rendezvous at MASTER_ADDR=127.0.0.1 (gloo on the CPU).

The two launches train the demo config together (world size 2) and write one set of checkpoints, rank 0's, into the
shared work dir; killing one node's worker ends both launches with a non-zero exit code, soon.
"""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.test_reliability import _children, _cmdline, _descendants

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CLS = 'configs/demo/maformer-mini_demo_cls.py'
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1')


def _launch(node_rank, port, work_dir, options):
    env = dict(ENV, PYTHON=sys.executable, NNODES='2', NODE_RANK=str(node_rank), MASTER_ADDR='127.0.0.1',
               PORT=str(port))
    return subprocess.Popen(['bash', 'tools/dist_train.sh', DEMO_CLS, '1', '--work-dir', str(work_dir), '--no-validate',
                             '--cfg-options', 'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
                             'default_hooks.logger.interval=1', 'randomness.seed=0'] + options,
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _port(offset):
    return 29100 + (os.getpid() * 2 + offset) % 500


def _kill_all(jobs):
    for job in jobs:
        if job.poll() is None:
            for pid in _descendants(job.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            job.kill()


@pytest.mark.timeout(400)
def test_two_nodes_train_together_and_write_one_checkpoint(tmp_path):
    work_dir = tmp_path / 'work'
    options = ['train_cfg.max_iters=4', 'default_hooks.checkpoint.interval=4']
    jobs = [_launch(rank, _port(0), work_dir, options) for rank in (0, 1)]
    try:
        outputs = [job.communicate(timeout=360)[0] for job in jobs]
    finally:
        _kill_all(jobs)
    for rank, (job, out) in enumerate(zip(jobs, outputs)):
        assert job.returncode == 0, f'node {rank}:\n{out[-3000:]}'
    assert re.search(r'Iter\(train\) \[4/4\]', outputs[0]), outputs[0][-3000:]
    assert 'GPU number: 2' in outputs[0], outputs[0][-3000:]  # mmengine's environment report: the world size
    checkpoints = sorted(name for name in os.listdir(work_dir) if name.endswith('.pth'))
    assert checkpoints == ['iter_4.pth'], checkpoints
    with open(work_dir / 'last_checkpoint') as f:
        assert f.read().strip().endswith('iter_4.pth')
    import torch
    state = torch.load(work_dir / 'iter_4.pth', map_location='cpu', weights_only=False)
    assert state['meta']['iter'] == 4 and state['meta']['world_size'] == 2  # WorldSizeHook's record
    assert 'Traceback' not in outputs[1], outputs[1][-3000:]


@pytest.mark.timeout(400)
@pytest.mark.parametrize('victim', [1, 0])
def test_killing_one_nodes_worker_ends_both_launches_nonzero(tmp_path, victim):
    jobs = [_launch(rank, _port(1 + victim), tmp_path / 'work', ['train_cfg.max_iters=1000']) for rank in (0, 1)]
    lines = []
    try:
        for line in jobs[0].stdout:  # rank 0 (node 0) logs every iteration; both nodes train by its second
            lines.append(line)
            if re.search(r'Iter\(train\) \[\s*2/1000\]', line):
                break
        worker = _worker(jobs[victim])
        assert worker is not None, ''.join(lines[-20:])
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        codes = []
        for job in jobs:
            job.communicate(timeout=120)
            codes.append(job.returncode)
        elapsed = time.monotonic() - killed_at
    finally:
        _kill_all(jobs)
    assert all(code != 0 for code in codes), f"exit codes of node 0's and node 1's launch: {codes}"
    assert elapsed < 90, f'the launches took {elapsed:.0f}s to exit after node {victim}\'s worker died'


def _worker(job):
    agents = [p for p in [job.pid] + _descendants(job.pid) if 'torch.distributed.run' in _cmdline(p)]
    if len(agents) != 1:
        return None
    workers = [p for p in _children(agents[0]) if 'tools/train.py' in _cmdline(p)]
    return workers[0] if len(workers) == 1 else None
