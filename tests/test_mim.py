"""The OpenMMLab user path through openmim: `mim search`, `mim train`, `mim test` and `mim run` on this package, and
`mim train mmdet/mmseg` on our configs, each on the demo configs for a couple of iterations; and the wheel that
`pip install .` builds carries what mim reads (mixformer_mm/.mim)."""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODEL_FOLDERS = ('groupmixformer', 'glnet', 'maformer', 'dgt')
MIM = osp.join(osp.dirname(sys.executable), 'mim')
# Two iterations, validated once at the end (mmengine's loop always validates after the last iteration).
TWO_ITERATIONS = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
                  'default_hooks.logger.interval=1']


def run_mim(*args, cwd, timeout=900):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    proc = subprocess.run([MIM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'mim {" ".join(args)} failed ({proc.returncode}):\n{output[-4000:]}'
    return output


@pytest.fixture(scope='module')
def demo_cwd(tmp_path_factory):
    """A folder outside the checkout with the demo data under data/demo, where the demo configs read it."""
    cwd = tmp_path_factory.mktemp('mim_cwd')
    subprocess.run([sys.executable, osp.join(REPO, 'tools', 'make_demo_data.py'), '--root', str(cwd / 'data' / 'demo')],
                   check=True, capture_output=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    return cwd


def test_mim_finds_the_package_and_its_mim_folder():
    from mim.utils import get_installed_path
    installed = get_installed_path('mixformer_mm')
    assert osp.realpath(installed) == osp.join(REPO, 'mixformer_mm'), installed
    for name in ('model-index.yml', 'configs', 'tools', 'demo'):
        assert osp.exists(osp.join(installed, '.mim', name)), f'{name} missing from {installed}/.mim'


def test_search_lists_every_config_with_its_metrics(tmp_path):
    out = tmp_path / 'search.json'
    run_mim('search', 'mixformer_mm', '--json', str(out), cwd=tmp_path)
    found = json.loads(out.read_text())  # column -> {config id -> value}
    config_ids = set(found['config'])
    expected = {osp.splitext(osp.basename(path))[0]
                for folder in MODEL_FOLDERS for path in glob.glob(osp.join(REPO, 'configs', folder, '*.py'))}
    assert len(expected) >= 17 + 59
    assert expected - config_ids == set(), 'configs that mim search does not list'
    # Published figures reach mim's table: GroupMixFormer-T's 82.6 top-1 from its authors' README
    top1 = found['imagenet-1k/top_1_accuracy']
    assert top1['groupmixformer-t_8xb64_in1k'] == pytest.approx(82.6)
    # every listed config points at an existing file
    for config_id, path in found['config'].items():
        assert osp.isfile(osp.join(REPO, path)), (config_id, path)


def test_mim_train_test_and_run_on_our_demo_config(demo_cwd, tmp_path):
    work_dir = tmp_path / 'work'
    # A bare file name: mim finds it in mixformer_mm/.mim/configs, as it finds mmdet's configs.
    run_mim('train', 'mixformer_mm', 'groupmixformer-m_demo_cls.py', '--gpus', '0', '--work-dir', str(work_dir),
            '--cfg-options', *TWO_ITERATIONS, cwd=demo_cwd)
    checkpoint = work_dir / 'iter_2.pth'
    assert checkpoint.is_file(), sorted(os.listdir(work_dir))

    output = run_mim('test', 'mixformer_mm', 'groupmixformer-m_demo_cls.py', '--checkpoint', str(checkpoint),
                     '--work-dir', str(tmp_path / 'test'), cwd=demo_cwd)
    assert 'accuracy/top1:' in output, output[-2000:]

    demo_config = osp.join(REPO, 'configs', 'demo', 'groupmixformer-m_demo_cls.py')
    output = run_mim('run', 'mixformer_mm', 'get_flops', demo_config, '--shape', '64', '64', cwd=demo_cwd)
    assert 'GFLOPs' in output or 'FLOPs' in output, output[-2000:]


@pytest.mark.parametrize('codebase,config', [('mmdet', 'groupmixformer-m_demo_det.py'),
                                             ('mmseg', 'groupmixformer-m_demo_seg.py')])
def test_codebase_mim_train_on_our_config(codebase, config, demo_cwd, tmp_path):
    """mmdet's and mmseg's own training scripts run our configs (custom_imports registers the backbone)."""
    work_dir = tmp_path / 'work'
    run_mim('train', codebase, osp.join(REPO, 'configs', 'demo', config), '--gpus', '0', '--work-dir', str(work_dir),
            '--cfg-options', *TWO_ITERATIONS, cwd=demo_cwd)
    assert (work_dir / 'iter_2.pth').is_file(), sorted(os.listdir(work_dir))


def test_wheel_carries_the_mim_folder(tmp_path):
    """A non-editable install (`pip install .`) gets copies of what mim reads, not links into a checkout."""
    source = tmp_path / 'src'
    # build from a copy, so the checkout's own mixformer_mm/.mim (links) and egg-info are left alone
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        '.git', '.venv', '.gpu_site', 'data', 'work_dirs', 'checkpoints', '.mim', '*.egg-info', '__pycache__'))
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', str(source),
                    '-w', str(tmp_path / 'wheel')], check=True, capture_output=True)
    wheel, = glob.glob(str(tmp_path / 'wheel' / 'mixformer_mm-*.whl'))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for symlink_free in (n for n in names if n.startswith('mixformer_mm/.mim/')):
            assert archive.getinfo(symlink_free).external_attr >> 28 != 0o12, f'{symlink_free} is a link'
        index = archive.read('mixformer_mm/.mim/model-index.yml').decode()
    for metafile in (line.strip()[2:] for line in index.splitlines() if line.strip().startswith('- ')):
        assert f'mixformer_mm/.mim/{metafile}' in names, metafile
    for path in ('configs/demo/groupmixformer-m_demo_cls.py', 'configs/_base_/mixformer_mm.py', 'tools/train.py',
                 'tools/test.py', 'tools/analysis_tools/get_flops.py', 'demo/image_demo.py'):
        assert f'mixformer_mm/.mim/{path}' in names, path
