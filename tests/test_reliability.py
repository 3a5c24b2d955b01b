"""Faults a training run must survive and bad inputs that must be refused with a clear error.

Real processes where the fault is a process' fate (SIGKILL during training, a dying distributed worker); a small
in-process mmengine Runner elsewhere, to keep the suite fast.
"""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.model import BaseModel
from torch import nn

from mixformer_mm.engine import (CheckpointError, DataNotFoundError, NonFiniteLossError, check_data, check_model_types,
                                 load_config)
from mixformer_mm.engine.reliability import (atomic_torch_save, checkpoint_problem, install_atomic_checkpoint_saving,
                                             resolve_resume)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from training_logs import logged_losses  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CLS = 'configs/demo/groupmixformer-m_demo_cls.py'
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1')


def _crash_config(folder):
    """The demo config with per-iteration raw losses (window 1), a checkpoint every 2 iterations, and EMA and
    DropPath on, so that their state and the random generators must be restored for the losses to match."""
    path = folder / 'crash_demo_cls.py'
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"_base_ = ['{REPO}/{DEMO_CLS}']\n"
        "log_processor = dict(window_size=1)\n"
        "default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=-1))\n"
        "train_cfg = dict(max_iters=6, val_interval=100)\n"
        "param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),\n"
        "                   dict(type='CosineAnnealingLR', by_epoch=False, begin=3, end=6)]\n"
        "model = dict(backbone=dict(drop_path_rate=0.2))\n"
        "custom_hooks = [dict(type='EMAHook', momentum=0.2)]\n"
        "randomness = dict(seed=0, deterministic=True)\n")
    return str(path)


def _train_cmd(config, work_dir, resume=False):
    return [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir)] + (['--resume'] if resume else [])


# --- kill -9 and resume ------------------------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_sigkill_between_checkpoints_then_resume_reproduces_the_uninterrupted_losses(tmp_path):
    reference_dir, crashed_dir = tmp_path / 'uninterrupted', tmp_path / 'crashed'
    config = _crash_config(tmp_path)
    reference = subprocess.Popen(_train_cmd(config, reference_dir), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    crashed = subprocess.Popen(_train_cmd(config, crashed_dir), cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in crashed.stdout:  # kill it right after iteration 3 is logged: iter_2.pth exists, iter_4.pth not yet
        seen.append(line)
        if 'Iter(train) [3/6]' in line:
            crashed.send_signal(signal.SIGKILL)
            break
    crashed.wait(timeout=60)
    assert crashed.returncode == -signal.SIGKILL, ''.join(seen[-30:])
    assert reference.wait(timeout=500) == 0
    assert os.path.isfile(crashed_dir / 'iter_2.pth') and not os.path.isfile(crashed_dir / 'iter_4.pth')

    resumed = subprocess.run(_train_cmd(config, crashed_dir, resume=True), cwd=REPO, env=ENV, capture_output=True,
                             text=True, timeout=500)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 2' in resumed.stdout + resumed.stderr

    expected, got = logged_losses(reference_dir), logged_losses(crashed_dir)
    assert sorted(expected) == list(range(1, 7)) and sorted(got) == list(range(1, 7))
    # iterations 1-3 ran in the killed process (same seed, deterministic: identical), 3-6 in the resumed one
    assert [got[i] for i in range(1, 7)] == [expected[i] for i in range(1, 7)]
    final, reference_final = (torch.load(d / 'iter_6.pth', map_location='cpu') for d in (crashed_dir, reference_dir))
    for key in ('state_dict', 'ema_state_dict'):
        for name, tensor in reference_final[key].items():
            assert torch.equal(final[key][name], tensor), (key, name)


# --- corrupted checkpoints and atomic writes ---------------------------------------------------------------------
def _write_checkpoints(folder, count=3):
    paths = []
    for i in range(1, count + 1):
        path = folder / f'iter_{2 * i}.pth'
        atomic_torch_save({'meta': {'iter': 2 * i}, 'state_dict': {'w': torch.full((64, 64), float(i))}}, str(path))
        paths.append(path)
    (folder / 'last_checkpoint').write_text(str(paths[-1]))
    return paths


def test_auto_resume_skips_a_truncated_latest_checkpoint_and_names_it(tmp_path):
    first, second, latest = _write_checkpoints(tmp_path)
    latest.write_bytes(latest.read_bytes()[:-300])  # a crash during a non-atomic save
    messages = []
    assert resolve_resume(str(tmp_path), 'auto', log=messages.append) == str(second)
    assert messages and str(latest) in messages[0] and 'trying the previous checkpoint' in messages[0]

    with pytest.raises(CheckpointError, match=f'--resume {latest}: cannot read this checkpoint.*{second}'):
        resolve_resume(str(tmp_path), str(latest))


def test_a_corrupted_byte_is_caught_not_only_truncation(tmp_path):
    path = _write_checkpoints(tmp_path, count=1)[0]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensor payload
    path.write_bytes(bytes(data))
    assert 'CRC' in checkpoint_problem(str(path))


def test_resume_with_nothing_to_resume_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing to resume in .*Start without --resume'):
        resolve_resume(str(tmp_path), 'auto')
    result = subprocess.run([sys.executable, 'tools/train.py', DEMO_CLS, '--work-dir', str(tmp_path), '--resume'],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and 'nothing to resume in' in result.stderr


def test_checkpoint_saving_is_atomic_when_the_writer_crashes(tmp_path):
    import mmengine.runner.runner as runner_module
    install_atomic_checkpoint_saving()
    path = tmp_path / 'iter_2.pth'
    runner_module.save_checkpoint({'state_dict': {'w': torch.ones(3)}}, str(path))

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError('disk full')

    with pytest.raises(RuntimeError, match='disk full'):
        runner_module.save_checkpoint({'state_dict': {'w': torch.zeros(3)}, 'x': Unpicklable()}, str(path))
    assert torch.equal(torch.load(path)['state_dict']['w'], torch.ones(3))  # the old file is untouched
    assert os.listdir(tmp_path) == ['iter_2.pth']  # and no temporary file is left behind


def test_test_tool_refuses_a_truncated_checkpoint_naming_it(tmp_path):
    path = _write_checkpoints(tmp_path, count=1)[0]
    path.write_bytes(path.read_bytes()[:100])
    result = subprocess.run([sys.executable, 'tools/test.py', DEMO_CLS, str(path), '--work-dir', str(tmp_path)],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f'checkpoint {path} cannot be read' in result.stderr


def test_test_tool_refuses_a_checkpoint_of_another_model(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(64, 3, 7, 7)}}, path)
    result = subprocess.run([sys.executable, 'tools/test.py', DEMO_CLS, str(path), '--work-dir', str(tmp_path)],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert f'checkpoint {path} does not fit this ImageClassifier' in message
    assert 'missing keys' in message and 'unexpected keys (1): backbone.conv1.weight' in message


# --- a small in-process runner ------------------------------------------------------------------------------------
class ToyModel(BaseModel):
    """Two loss terms; ``loss_b`` is NaN at the iterations listed in ``nan_at`` (1-based)."""

    def __init__(self, nan_at=()):
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.nan_at, self.calls = set(nan_at), 0

    def forward(self, inputs, labels=None, mode='tensor'):
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.linear(inputs).squeeze(-1)
        if mode != 'loss':
            return out
        self.calls += 1
        loss_b = out.abs().mean() * 0.1
        if self.calls in self.nan_at:
            loss_b = loss_b * float('nan')
        labels = torch.stack(labels) if isinstance(labels, list) else labels
        return dict(loss_a=((out - labels) ** 2).mean(), loss_b=loss_b)


class ToyDataset(torch.utils.data.Dataset):
    def __init__(self, size=16):
        self.size = size

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        generator = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(4, generator=generator), labels=torch.tensor(float(i % 2)))


def _toy_runner(tmp_path, model, dataset, hooks, max_iters=5):
    from mmengine.runner import Runner
    return Runner(
        model=model, work_dir=str(tmp_path),
        train_dataloader=dict(dataset=dataset, batch_size=4, sampler=dict(type='InfiniteSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters), custom_hooks=hooks,
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=100)),
        default_scope='mmengine', experiment_name=f'toy_{time.monotonic_ns()}')


def test_non_finite_loss_stops_training_naming_iteration_and_term(tmp_path):
    model = ToyModel(nan_at={3})
    runner = _toy_runner(tmp_path, model, ToyDataset(), [dict(type='NonFiniteLossHook')])
    with pytest.raises(NonFiniteLossError, match=r'non-finite loss at iteration 3: loss_b=nan\. Training stopped'):
        runner.train()
    assert torch.isfinite(model.linear.weight).all()  # the NaN step never reached the optimizer


def test_non_finite_loss_step_is_skipped_when_the_config_asks(tmp_path):
    reference = ToyModel()
    torch.manual_seed(0)
    skipping = ToyModel(nan_at={3})
    skipping.load_state_dict(reference.state_dict())
    runner = _toy_runner(tmp_path / 'a', skipping, ToyDataset(), [dict(type='NonFiniteLossHook', action='skip')],
                         max_iters=3)
    runner.train()
    guard = next(h for h in runner._hooks if type(h).__name__ == 'NonFiniteLossHook')
    assert guard.skipped == 1
    # two real steps then a skipped one: equal to a run that stopped after two steps
    runner2 = _toy_runner(tmp_path / 'b', reference, ToyDataset(), [], max_iters=2)
    runner2.train()
    assert torch.equal(skipping.linear.weight, reference.linear.weight)


def test_a_dataset_with_zero_samples_is_refused(tmp_path):
    runner = _toy_runner(tmp_path, ToyModel(), ToyDataset(size=0), [dict(type='DatasetSizeHook')])
    with pytest.raises(ValueError, match='train_dataloader: the ToyDataset .* yields zero samples'):
        runner.train()


# --- bad inputs caught before anything is built -------------------------------------------------------------------
def test_unknown_backbone_type_suggests_close_names():
    cfg = load_config(os.path.join(REPO, DEMO_CLS), {'model.backbone.type': 'GroupMixFormr'})
    with pytest.raises(KeyError, match=r"model.backbone.type='GroupMixFormr' is not a registered model in scope "
                                       r"'mmpretrain'\. Did you mean 'GroupMixFormer'"):
        check_model_types(cfg)


@pytest.mark.parametrize('content, message', [
    ('{"images": [], "annotations": [', 'is not valid JSON'),
    ('[1, 2]', 'is not a JSON object'),
    ('{"images": [], "categories": []}', r"is not a COCO annotation file: no list \['annotations'\]"),
])
def test_annotation_file_that_is_not_coco_is_named(tmp_path, content, message):
    (tmp_path / 'ann.json').write_text(content)
    cfg = load_config(os.path.join(REPO, 'configs/demo/groupmixformer-m_demo_det.py'),
                      {'train_dataloader.dataset.data_root': str(tmp_path),
                       'train_dataloader.dataset.ann_file': 'ann.json'})
    with pytest.raises(ValueError, match=f'train_dataloader.dataset.ann_file: {tmp_path}/ann.json {message}'):
        check_data(cfg, ('train_dataloader', ))


def test_missing_annotation_file_is_named(tmp_path):
    cfg = load_config(os.path.join(REPO, 'configs/demo/groupmixformer-m_demo_det.py'),
                      {'train_dataloader.dataset.data_root': str(tmp_path)})
    with pytest.raises(DataNotFoundError, match='train_dataloader.dataset.ann_file: .* does not exist'):
        check_data(cfg, ('train_dataloader', ))


# --- distributed: a dying worker ends the job ------------------------------------------------------------------
def _children(pid):
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _descendants(pid):
    out = []
    for child in _children(pid):
        out += [child] + _descendants(child)
    return out


def _cmdline(pid):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            return f.read().replace(b'\0', b' ').decode()
    except OSError:
        return ''


@pytest.mark.timeout(400)
def test_dist_train_exits_nonzero_soon_after_a_worker_dies(tmp_path):
    env = dict(ENV, PYTHON=sys.executable, PORT=str(29700 + os.getpid() % 200))
    job = subprocess.Popen(['bash', 'tools/dist_train.sh', DEMO_CLS, '2', '--work-dir', str(tmp_path),
                            '--cfg-options', 'train_cfg.max_iters=1000', 'default_hooks.logger.interval=1'],
                           cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in job.stdout:
            lines.append(line)
            if re.search(r'Iter\(train\) \[\s*2/1000\]', line):
                break
        agents = [p for p in [job.pid] + _descendants(job.pid) if 'torch.distributed.run' in _cmdline(p)]
        assert len(agents) == 1, ''.join(lines[-20:])
        workers = [p for p in _children(agents[0]) if 'tools/train.py' in _cmdline(p)]
        assert len(workers) == 2, (workers, ''.join(lines[-20:]))
        os.kill(workers[-1], signal.SIGKILL)
        killed_at = time.monotonic()
        job.stdout.read()
        job.wait(timeout=120)
        elapsed = time.monotonic() - killed_at
    finally:
        if job.poll() is None:
            for pid in _descendants(job.pid):
                os.kill(pid, signal.SIGKILL)
            job.kill()
    assert job.returncode != 0
    assert elapsed < 60, f'the job took {elapsed:.0f}s to exit after a worker died'
