"""Preemption and time limits: a real SIGUSR1/SIGTERM during a demo training stops it after an iteration with that
iteration's checkpoint and exit code 124; tools/slurm_train.sh requeues; the resumed run's losses equal an
uninterrupted run's, on one process and on two (the signal reaching one rank only).

Slurm is not installed here: ``srun`` and ``scontrol`` are small fakes on PATH. The fake srun drops srun's own
options and runs the task command on one process with ``--launcher none``; the fake scontrol records its arguments.
"""
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch

from mixformer_mm.engine import PREEMPTED_MARKER, REQUEUE_EXIT_CODE
from mixformer_mm.engine.reliability import checkpoint_problem

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from training_logs import logged_losses  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CLS = 'configs/demo/groupmixformer-m_demo_cls.py'
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1', PYTHON=sys.executable)

FAKE_SRUN = r'''#!/usr/bin/env bash
echo "srun $*" >> "$FAKE_SLURM_LOG"
while [ $# -gt 0 ]; do case $1 in -p) shift 2;; -*) shift;; *) break;; esac; done
if [ -n "${FAKE_SRUN_CODES:-}" ]; then  # scripted exit codes, one a call; "M" before a code: write the marker
    read -r code < "$FAKE_SRUN_CODES"; sed -i 1d "$FAKE_SRUN_CODES"
    case $code in M*) code=${code#M}; echo '{}' > "$FAKE_WORK_DIR/preempted.json";; esac
    exit "$code"
fi
args=(); for a in "$@"; do if [ "$a" = slurm ] && [ "${args[-1]}" = --launcher ]; then a=none; fi; args+=("$a"); done
exec "${args[@]}"
'''
FAKE_SCONTROL = '#!/usr/bin/env bash\necho "scontrol $*" >> "$FAKE_SLURM_LOG"\nexit "${FAKE_SCONTROL_CODE:-0}"\n'


def _fake_slurm(tmp_path):
    folder = tmp_path / 'bin'
    folder.mkdir()
    for name, text in (('srun', FAKE_SRUN), ('scontrol', FAKE_SCONTROL)):
        (folder / name).write_text(text)
        (folder / name).chmod(stat.S_IRWXU)
    log = tmp_path / 'slurm.log'
    return dict(ENV, PATH=f'{folder}:{os.environ["PATH"]}', FAKE_SLURM_LOG=str(log)), log


def _config(folder, max_iters=6):
    """The demo config with per-iteration raw losses, DropPath on (random draws to restore), one checkpoint only at
    the end (so the stop checkpoint is the preemption hook's own) and at most one kept (the demo schedule's)."""
    path = folder / 'preempt_demo_cls.py'
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"_base_ = ['{REPO}/{DEMO_CLS}']\n"
        "log_processor = dict(window_size=1)\n"
        "default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=100, max_keep_ckpts=1))\n"
        f"train_cfg = dict(max_iters={max_iters}, val_interval=100)\n"
        "train_dataloader = dict(batch_size=16)\n"
        "param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),\n"
        f"                   dict(type='CosineAnnealingLR', by_epoch=False, begin=3, end={max_iters})]\n"
        "model = dict(backbone=dict(drop_path_rate=0.2))\n"
        "randomness = dict(seed=0, deterministic=True)\n")
    return str(path)


def _read_until(process, pattern, lines, timeout=400):
    start = time.monotonic()
    for line in process.stdout:
        lines.append(line)
        if re.search(pattern, line):
            return
        assert time.monotonic() - start < timeout, ''.join(lines[-30:])
    raise AssertionError(f'{pattern!r} never appeared:\n' + ''.join(lines[-40:]))


def _stopped_checkpoint(work_dir):
    marker = json.loads((work_dir / PREEMPTED_MARKER).read_text())
    path = marker['checkpoint']
    assert open(work_dir / 'last_checkpoint').read().strip() == path
    assert checkpoint_problem(path) is None
    return marker, int(re.search(r'iter_(\d+)\.pth$', path).group(1))


@pytest.mark.timeout(600)
def test_slurm_train_requeues_at_sigusr1_and_the_requeued_job_resumes_with_the_same_losses(tmp_path):
    config = _config(tmp_path)
    env, log = _fake_slurm(tmp_path)
    reference_dir, work_dir = tmp_path / 'uninterrupted', tmp_path / 'preempted'
    reference = subprocess.Popen([sys.executable, 'tools/train.py', config, '--work-dir', str(reference_dir)],
                                 cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    job = dict(env, SLURM_JOB_ID='4242')
    script = ['bash', 'tools/slurm_train.sh', 'part', 'demo', config, str(work_dir)]
    first = subprocess.Popen(script, cwd=REPO, env=job, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    _read_until(first, r'Iter\(train\) \[2/6\]', lines)
    first.send_signal(signal.SIGUSR1)  # to the batch script only, as sbatch --signal=B:USR1@90 does
    lines += first.stdout.readlines()
    output = ''.join(lines)
    assert first.wait(timeout=120) == 0, output[-3000:]  # the job was requeued
    assert reference.wait(timeout=400) == 0

    marker, stopped_at = _stopped_checkpoint(work_dir)
    assert marker['signal'] == 'SIGUSR1' and marker['exit_code'] == REQUEUE_EXIT_CODE
    assert 2 <= stopped_at < 6, output[-3000:]  # after the iteration running when the signal came
    assert f'stopped after iteration {stopped_at}/6' in output
    assert sorted(logged_losses(work_dir)) == list(range(1, stopped_at + 1))
    assert 'scontrol requeue 4242' in log.read_text()
    assert '--resume' not in log.read_text().splitlines()[0]

    # Slurm runs the batch script again in the requeued job, with SLURM_RESTART_COUNT set
    second = subprocess.run(script, cwd=REPO, env=dict(job, SLURM_RESTART_COUNT='1'), capture_output=True, text=True,
                            timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    srun_calls = [line for line in log.read_text().splitlines() if line.startswith('srun')]
    assert len(srun_calls) == 2 and srun_calls[1].split()[-3:] == ['--resume', '--launcher', 'slurm']
    assert f'resumed epoch: 0, iter: {stopped_at}' in second.stdout + second.stderr
    assert not (work_dir / PREEMPTED_MARKER).exists()

    expected, got = logged_losses(reference_dir), logged_losses(work_dir)
    assert sorted(expected) == list(range(1, 7)) and sorted(got) == list(range(1, 7))
    assert [got[i] for i in range(1, 7)] == [expected[i] for i in range(1, 7)]
    final, reference_final = (torch.load(d / 'iter_6.pth', map_location='cpu') for d in (work_dir, reference_dir))
    for name, tensor in reference_final['state_dict'].items():
        assert torch.equal(final['state_dict'][name], tensor), name


def _descendants(pid):
    children = {}
    for entry in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{entry}/stat') as f:
                children.setdefault(int(f.read().rsplit(')', 1)[1].split()[1]), []).append(int(entry))
        except OSError:
            continue
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _environ(pid):
    try:
        with open(f'/proc/{pid}/environ', 'rb') as f:
            return dict(item.split(b'=', 1) for item in f.read().split(b'\0') if b'=' in item)
    except OSError:
        return {}


def _dist_train(config, work_dir, *extra):
    env = dict(ENV, PORT=str(29300 + (os.getpid() + len(str(work_dir))) % 300))
    return subprocess.Popen(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', str(work_dir), *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.timeout(900)
def test_two_processes_stop_at_the_same_iteration_when_one_rank_gets_sigterm(tmp_path):
    config = _config(tmp_path)
    reference_dir, work_dir = tmp_path / 'uninterrupted', tmp_path / 'preempted'
    reference = _dist_train(config, reference_dir)
    reference_out = reference.communicate(timeout=500)[0]
    assert reference.returncode == 0, reference_out[-3000:]

    job, lines = _dist_train(config, work_dir), []
    try:
        _read_until(job, r'Iter\(train\) \[2/6\]', lines)
        rank1 = [p for p in _descendants(job.pid) if _environ(p).get(b'RANK') == b'1'
                 and b'tools/train.py' in open(f'/proc/{p}/cmdline', 'rb').read()]
        rank1 = [p for p in rank1 if not any(p in _descendants(q) for q in rank1)]  # not its data-loader worker
        assert len(rank1) == 1, (rank1, ''.join(lines[-20:]))
        os.kill(rank1[0], signal.SIGTERM)  # rank 1 only: rank 0 learns of it through the all-reduce
        lines += job.stdout.readlines()
        job.wait(timeout=120)
    finally:
        if job.poll() is None:
            for pid in _descendants(job.pid):
                os.kill(pid, signal.SIGKILL)
            job.kill()
    output = ''.join(lines)
    # torchrun reports the workers' exit code 124 as a failure of its own
    assert job.returncode != 0 and 'exitcode  : 124' in output, output[-3000:]
    marker, stopped_at = _stopped_checkpoint(work_dir)
    assert marker['signal'] == 'received on another rank'  # written by rank 0, which got no signal itself
    assert 2 <= stopped_at < 6 and output.count(f'stopped after iteration {stopped_at}/6') == 1
    assert sorted(logged_losses(work_dir)) == list(range(1, stopped_at + 1))

    resumed = _dist_train(config, work_dir, '--resume')
    resumed_out = resumed.communicate(timeout=500)[0]
    assert resumed.returncode == 0, resumed_out[-3000:]
    assert f'resumed epoch: 0, iter: {stopped_at}' in resumed_out
    expected, got = logged_losses(reference_dir), logged_losses(work_dir)
    assert sorted(got) == list(range(1, 7)) and [got[i] for i in range(1, 7)] == [expected[i] for i in range(1, 7)]


# --- the requeue logic of tools/slurm_train.sh, with scripted srun exit codes ------------------------------------
def _run_script(tmp_path, codes, **env_extra):
    env, log = _fake_slurm(tmp_path) if not (tmp_path / 'bin').exists() else (None, tmp_path / 'slurm.log')
    if env is None:
        env = dict(ENV, PATH=f'{tmp_path / "bin"}:{os.environ["PATH"]}', FAKE_SLURM_LOG=str(log))
    if log.exists():
        log.unlink()
    work_dir = tmp_path / 'work'
    work_dir.mkdir(exist_ok=True)
    (tmp_path / 'codes').write_text(''.join(f'{c}\n' for c in codes))
    env = dict(env, FAKE_SRUN_CODES=str(tmp_path / 'codes'), FAKE_WORK_DIR=str(work_dir), **env_extra)
    result = subprocess.run(['bash', 'tools/slurm_train.sh', 'part', 'job', 'cfg.py', str(work_dir), '--amp'],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return result, [c for c in calls if c.startswith('srun')], [c for c in calls if c.startswith('scontrol')]


def test_slurm_train_outside_an_allocation_runs_srun_again_with_resume(tmp_path):
    result, sruns, scontrols = _run_script(tmp_path, ['124', 'M137', '0'])
    assert result.returncode == 0, result.stderr
    assert len(sruns) == 3 and not scontrols
    assert '--resume' not in sruns[0] and all(s.endswith('--amp --resume --launcher slurm') for s in sruns[1:])
    # 137: srun's code when a rank was killed while shutting down; the marker says the checkpoint was written
    assert 'exit code 137' in result.stderr


def test_slurm_train_passes_other_exit_codes_through_and_stops_requeueing_at_the_limit(tmp_path):
    result, sruns, scontrols = _run_script(tmp_path, ['3'])
    assert result.returncode == 3 and len(sruns) == 1 and not scontrols
    result, sruns, scontrols = _run_script(tmp_path, ['124', '124', '124'], MAX_REQUEUES='1')
    assert result.returncode == REQUEUE_EXIT_CODE and len(sruns) == 2
    assert '1 requeues in a row (MAX_REQUEUES)' in result.stderr
    result, sruns, scontrols = _run_script(tmp_path, ['124'], MAX_REQUEUES='x')
    assert result.returncode == 2 and 'MAX_REQUEUES must be a whole number' in result.stderr and not sruns


def test_slurm_train_in_a_batch_job_requeues_it_and_a_restart_resumes_only_with_a_checkpoint(tmp_path):
    result, sruns, scontrols = _run_script(tmp_path, ['124'], SLURM_JOB_ID='77')
    assert result.returncode == 0 and scontrols == ['scontrol requeue 77'] and len(sruns) == 1
    result, sruns, scontrols = _run_script(tmp_path, ['124'], SLURM_JOB_ID='77', FAKE_SCONTROL_CODE='1')
    assert result.returncode == REQUEUE_EXIT_CODE and 'could not requeue job 77' in result.stderr
    # the requeued job: nothing saved yet (stopped by a node failure, say) -> a fresh start; a checkpoint -> resume
    result, sruns, _ = _run_script(tmp_path, ['0'], SLURM_JOB_ID='77', SLURM_RESTART_COUNT='1')
    assert result.returncode == 0 and '--resume' not in sruns[0] and 'no checkpoint yet' in result.stderr
    (tmp_path / 'work' / 'iter_4.pth').write_bytes(b'x')
    result, sruns, _ = _run_script(tmp_path, ['0'], SLURM_JOB_ID='77', SLURM_RESTART_COUNT='1')
    assert result.returncode == 0 and sruns[0].endswith('--amp --resume --launcher slurm')


# --- epoch-based loops: the signal is honoured at the end of the epoch (in-process, a toy model) -----------------
class _ToyModel(__import__('mmengine.model', fromlist=['BaseModel']).BaseModel):
    """A linear regressor that sends its own process ``signal_at`` (a 1-based training step) once."""

    def __init__(self, signal_at=None):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 1)
        self.signal_at, self.steps = signal_at, 0

    def forward(self, inputs, labels=None, mode='tensor'):
        stack = (lambda x: torch.stack(x) if isinstance(x, (list, tuple)) else x)
        out = self.linear(stack(inputs)).squeeze(-1)
        if mode != 'loss':
            return out
        self.steps += 1
        if self.steps == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return dict(loss=((out - stack(labels)) ** 2).mean())


class _ToyDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        return dict(inputs=torch.randn(4, generator=torch.Generator().manual_seed(i)), labels=torch.tensor(i % 3.0))


def _epoch_runner(work_dir, model, resume_from=None):
    from mmengine.runner import Runner
    return Runner(
        model=model, work_dir=str(work_dir),
        train_dataloader=dict(dataset=_ToyDataset(), batch_size=4, sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        param_scheduler=dict(type='MultiStepLR', milestones=[2], by_epoch=True),
        train_cfg=dict(by_epoch=True, max_epochs=3), custom_hooks=[dict(type='PreemptionHook')],
        default_hooks=dict(checkpoint=dict(type='SafeCheckpointHook', interval=100, by_epoch=True)),
        randomness=dict(seed=0), resume=resume_from is not None, load_from=resume_from,
        default_scope='mmengine', experiment_name=f'toy_{time.monotonic_ns()}')


def test_an_epoch_based_loop_stops_at_the_end_of_the_epoch_and_resumes_exactly(tmp_path):
    import mixformer_mm.engine  # noqa: F401  (registers the hooks)
    reference = _ToyModel()
    _epoch_runner(tmp_path / 'reference', reference).train()

    interrupted = _ToyModel(signal_at=6)  # epoch 2, its second of four iterations
    runner = _epoch_runner(tmp_path / 'preempted', interrupted)
    runner.train()
    hook = next(h for h in runner.hooks if type(h).__name__ == 'PreemptionHook')
    assert hook.preempted and hook.received == 'SIGTERM'
    assert interrupted.steps == 8 and runner.iter == 8 and runner.epoch == 2  # finished epoch 2, then stopped
    assert hook.checkpoint == str(tmp_path / 'preempted' / 'epoch_2.pth')
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is gone after the run
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])

    resumed = _ToyModel()
    runner = _epoch_runner(tmp_path / 'preempted', resumed, resume_from=hook.checkpoint)
    runner.train()
    assert resumed.steps == 4 and runner.epoch == 3
    assert torch.equal(resumed.linear.weight, reference.linear.weight)
    assert torch.equal(resumed.linear.bias, reference.linear.bias)
