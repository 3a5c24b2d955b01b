"""tools/train.py and tools/test.py as users meet them: clear errors, and a 2-process CPU run of dist_train.sh."""
import glob
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CLS = 'configs/demo/groupmixformer-m_demo_cls.py'


def _run(args, timeout=600, env=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=full_env)


def test_missing_config_file_is_named_with_suggestions():
    result = _run([sys.executable, 'tools/train.py', 'configs/groupmixformer/groupmixformer-s_8xb64_in1kk.py'])
    assert result.returncode != 0
    assert 'config file configs/groupmixformer/groupmixformer-s_8xb64_in1kk.py does not exist' in result.stderr
    assert 'groupmixformer-s_8xb64_in1k.py' in result.stderr  # the close match is suggested


def test_missing_dataset_root_is_named_and_points_to_demo(tmp_path):
    result = _run([sys.executable, 'tools/train.py', 'configs/groupmixformer/groupmixformer-t_8xb64_in1k.py',
                   '--work-dir', str(tmp_path), '--cfg-options', f'train_dataloader.dataset.data_root={tmp_path}/nope'])
    assert result.returncode != 0
    assert f'train_dataloader.dataset.data_root: {tmp_path}/nope does not exist' in result.stderr
    assert 'configs/demo/' in result.stderr


def test_resume_with_missing_checkpoint_file_is_named(tmp_path):
    result = _run([sys.executable, 'tools/train.py', DEMO_CLS, '--work-dir', str(tmp_path),
                   '--resume', str(tmp_path / 'iter_5.pth')])
    assert result.returncode != 0
    assert f'--resume {tmp_path}/iter_5.pth: no such checkpoint file' in result.stderr


def _last_scalars(work_dir):
    logs = sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')))
    assert logs, f'no scalars.json under {work_dir}'
    with open(logs[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


# config: (iterations, cfg-options). The dense demos (Mask R-CNN, UperNet) run under DDP too, where a parameter
# that gets no gradient fails the second iteration (find_unused_parameters=False); they validate on 8 images.
DIST_TRAIN = {
    DEMO_CLS: (4, []),
    'configs/demo/groupmixformer-m_demo_det.py': (3, ['val_dataloader.dataset.indices=8']),
    'configs/demo/groupmixformer-m_demo_seg.py': (3, ['val_dataloader.dataset.indices=8']),
}


@pytest.mark.parametrize('config', sorted(DIST_TRAIN), ids=lambda p: os.path.basename(p)[:-len('.py')])
def test_dist_train_two_cpu_processes(config, tmp_path):
    iters, options = DIST_TRAIN[config]
    env = {'PYTHON': sys.executable, 'PORT': str(29500 + os.getpid() % 1000), 'OMP_NUM_THREADS': '1'}
    result = _run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', str(tmp_path), '--cfg-options',
                   f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
                   f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=1', *options],
                  env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert 'Distributed training: True' in output and 'Distributed launcher: pytorch' in output
    assert os.path.isfile(tmp_path / f'iter_{iters}.pth')
    records = _last_scalars(str(tmp_path))
    train_logs = [s for s in records if 'loss' in s]
    assert [s['iter'] for s in train_logs] == list(range(1, iters + 1))
    assert all(s['loss'] == s['loss'] for s in train_logs)  # finite, not NaN
    assert [s for s in records if 'lr' not in s], 'no validation metrics were logged'


def test_resume_continues_from_the_latest_checkpoint(tmp_path):
    common = ['--work-dir', str(tmp_path), '--cfg-options', 'default_hooks.checkpoint.interval=2',
              'default_hooks.logger.interval=1', 'train_cfg.val_interval=100', 'param_scheduler=[]']
    first = _run([sys.executable, 'tools/train.py', DEMO_CLS, *common, 'train_cfg.max_iters=2'])
    assert first.returncode == 0, first.stderr[-3000:]
    assert os.path.isfile(tmp_path / 'iter_2.pth')
    # torch.load's weights_only default must read mmengine's own checkpoint (message hub, numpy state).
    second = _run([sys.executable, 'tools/train.py', DEMO_CLS, '--resume', *common, 'train_cfg.max_iters=4'])
    assert second.returncode == 0, second.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 2' in second.stdout + second.stderr
    assert os.path.isfile(tmp_path / 'iter_4.pth')
    train_logs = [s for s in _last_scalars(str(tmp_path)) if 'loss' in s]
    assert [s['iter'] for s in train_logs] == [3, 4]


def test_get_flops_counts_the_whole_detector_by_default_and_the_backbone_on_request(capsys):
    sys.path.insert(0, os.path.join(REPO, 'tests'))
    from config_checks import load_script
    get_flops = load_script('tools/analysis_tools/get_flops.py', 'get_flops')
    config = os.path.join(REPO, 'configs/demo/groupmixformer-m_demo_det.py')
    rows = {}
    for extra in ([], ['--backbone-only']):
        get_flops.main([config, '--shape', '128', '160'] + extra)
        cells = [c.strip() for c in capsys.readouterr().out.strip().splitlines()[-1].strip('|').split('|')]
        rows[cells[4]] = float(cells[3])
    # The Mask R-CNN heads (RPN, box and mask RoI heads) cost more than nothing on top of backbone + neck.
    assert set(rows) == {'whole model', 'backbone + neck'}
    assert rows['whole model'] > rows['backbone + neck'] * 1.2
    with pytest.raises(SystemExit):
        get_flops.main([config, '--shape', '1', '2', '3'])
