"""Broken data (issue 20 item 3): a truncated or unreadable image, or an annotation pointing at a missing file, stops
tools/train.py (and tools/test.py) with BrokenDataError naming the file and the dataset index, from inside a
data-loader worker too; with broken_data.action=skip training skips such samples, names each and logs the count.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.usefixtures('demo_data')  # copies the demo images
DEMO_CLS = 'configs/demo/maformer-mini_demo_cls.py'
CLASSES = ('circle', 'cross', 'square', 'triangle')
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1')


def _source(name, i=0):
    return os.path.join(REPO, 'data', 'demo', 'cls', 'val', name, f'{name}_{i:04d}.jpg')


def _dataset(root, broken):
    """Two demo images per class as an image list (ann_file); ``broken`` makes circle_0000's entry bad."""
    lines = []
    for label, name in enumerate(CLASSES):
        os.makedirs(root / name)
        for i in range(2):
            target = root / name / f'{name}_{i:04d}.jpg'
            lines.append(f'{name}/{name}_{i:04d}.jpg {label}')
            if name == 'circle' and i == 0:
                data = open(_source(name, i), 'rb').read()
                if broken == 'truncated':
                    target.write_bytes(data[:len(data) // 2])
                elif broken == 'unreadable':
                    target = root / name / 'circle_0000.png'
                    target.write_bytes(b'\x89PNG\r\n\x1a\n' + b'not an image' * 8 + b'IEND\xaeB`\x82')
                    lines[-1] = f'{name}/circle_0000.png {label}'
                # 'missing': no file at all
                continue
            shutil.copy(_source(name, i), target)
    (root / 'list.txt').write_text('\n'.join(lines) + '\n')
    return str(root), str(root / lines[0].split()[0])


def _options(root, split='train', workers=0, batch_size=4):
    loader = f'{split}_dataloader'
    return [f'{loader}.dataset.data_root={root}', f'{loader}.dataset.data_prefix=',
            f'{loader}.dataset.ann_file=list.txt', f'{loader}.batch_size={batch_size}',
            f'{loader}.num_workers={workers}', f'{loader}.persistent_workers=False']


def _run(args, tmp_path):
    return subprocess.run([sys.executable] + args + ['--work-dir', str(tmp_path / 'work')], cwd=REPO, env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)


def _train(tmp_path, options, iters=1):
    return _run(['tools/train.py', DEMO_CLS, '--no-validate', '--cfg-options', f'train_cfg.max_iters={iters}',
                 'randomness.seed=0', 'train_dataloader.sampler.shuffle=False'] + options, tmp_path)


@pytest.mark.timeout(300)
@pytest.mark.parametrize('broken, workers, problem', [
    ('truncated', 1, r'image file is broken: truncated JPEG \(\d+ bytes, no end-of-image marker\)'),
    ('unreadable', 0, r"LoadImageFromFile failed: AssertionError: failed to load image: \S+circle_0000.png"),
    ('missing', 1, r'the annotation points at a missing image file'),
])
def test_train_stops_at_broken_data_naming_file_and_index(tmp_path, broken, workers, problem):
    root, bad = _dataset(tmp_path / 'data', broken)
    result = _train(tmp_path, _options(root, workers=workers))
    out = result.stdout
    assert result.returncode != 0, out[-3000:]
    assert re.search(re.escape(f'BrokenDataError: {bad} (dataset index 0, train data): ') + problem, out), out[-3000:]
    if workers:
        assert 'Caught BrokenDataError in DataLoader worker process 0' in out, out[-3000:]
    assert 'Iter(train)' not in out


@pytest.mark.timeout(300)
def test_test_tool_stops_at_a_missing_file_naming_it(tmp_path):
    root, bad = _dataset(tmp_path / 'data', 'missing')
    checkpoint = str(tmp_path / 'never_read.pth')  # the error comes before any prediction: an untrained model
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mixformer_mm  # noqa: F401
    cfg = Config.fromfile(os.path.join(REPO, DEMO_CLS))
    init_default_scope(cfg.default_scope)
    from mmpretrain.registry import MODELS
    torch.save({'state_dict': MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor)).state_dict()},
               checkpoint)
    result = _run(['tools/test.py', DEMO_CLS, checkpoint, '--cfg-options'] + _options(root, 'test', workers=1),
                  tmp_path)
    assert result.returncode != 0
    assert (f'BrokenDataError: {bad} (dataset index 0, test data): the annotation points at a missing image file'
            in result.stdout), result.stdout[-3000:]


@pytest.mark.timeout(300)
def test_skip_is_opt_in_names_each_skipped_file_and_counts_them(tmp_path):
    root, bad = _dataset(tmp_path / 'data', 'truncated')
    options = _options(root, workers=1) + ['broken_data.action=skip', 'default_hooks.logger.interval=1']
    result = _train(tmp_path, options, iters=2)
    out = result.stdout
    assert result.returncode == 0, out[-3000:]
    skipped = re.findall(re.escape(f'broken data skipped: {bad} (dataset index 0, train data): image file is broken: '
                                   'truncated JPEG') + r'.*\((\d+) skipped so far\)', out)
    assert skipped, out[-3000:]
    counts = [int(n) for n in re.findall(r'broken data: (\d+) training sample\(s\) skipped so far', out)]
    assert counts and counts[-1] == len(skipped) == int(skipped[-1]), (skipped, counts, out[-3000:])
    assert 'Iter(train) [2/2]' in out
