"""Bad inputs through the tools (issue 20 item 6), each refused with a named error naming the image or the key.

A NaN or Inf image, an image with 1 or 4 channels where the model expects 3 (read with LoadImageFromFile's
``color_type='unchanged'``, which keeps a float TIFF's values and a PNG's channel count) and a ``num_classes`` that
disagrees with the dataset run through tools/train.py and tools/test.py (InputCheckHook); an empty image list
through tools/train.py (an empty annotation list: DatasetSizeHook) and demo/image_demo.py (an empty folder).
Each case is a real tool process stopped at its first batch; one data loader worker where a batch is loaded, so that
the error is seen through the worker as well.
"""
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.usefixtures('demo_data')  # copies the demo images
DEMO_CLS = 'configs/demo/maformer-mini_demo_cls.py'
CLASSES = ('circle', 'cross', 'square', 'triangle')
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1')


def _dataset(root, bad=None, classes=CLASSES):
    """One demo image per class under ``root``/<class>/, the first class's replaced by ``bad`` (name, array)."""
    for name in classes:
        os.makedirs(root / name)
        source = os.path.join(REPO, 'data', 'demo', 'cls', 'val', name, f'{name}_0000.jpg')
        if bad is not None and name == CLASSES[0]:
            assert cv2.imwrite(str(root / name / bad[0]), bad[1])
        else:
            shutil.copy(source, root / name / f'{name}_0000.jpg')
    return str(root)


def _options(root, split='train'):
    loader = f'{split}_dataloader'
    return [f'{loader}.dataset.data_root={root}', f'{loader}.dataset.data_prefix=', f'{loader}.batch_size=4',
            f'{loader}.num_workers=1', f'{loader}.dataset.pipeline.0.color_type=unchanged']


def _run(args, tmp_path):
    result = subprocess.run([sys.executable] + args + ['--work-dir', str(tmp_path / 'work')], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert result.returncode != 0, result.stdout[-3000:]
    return result.stdout


def _train(tmp_path, options):
    return _run(['tools/train.py', DEMO_CLS, '--no-validate', '--cfg-options', 'train_cfg.max_iters=1',
                 'randomness.seed=0'] + options, tmp_path)


def _float_image(value):
    image = np.random.RandomState(0).rand(64, 64, 3).astype(np.float32) * 255
    image[5, 7, 1] = value
    return image


@pytest.mark.timeout(300)
@pytest.mark.parametrize('value', ['nan', 'inf'])
def test_train_refuses_a_non_finite_image_naming_it(tmp_path, value):
    root = _dataset(tmp_path / 'data', bad=('circle_bad.tif', _float_image(float(value))))
    out = _train(tmp_path, _options(root))
    name = 'NaN' if value == 'nan' else 'infinite'
    count = '1 NaN and 0 infinite' if value == 'nan' else '0 NaN and 1 infinite'
    assert 'NonFiniteInputError: train iteration 1: image ' in out, out[-3000:]
    assert 'circle_bad.tif, dataset index 0, batch position' in out and count in out and name in out, out[-3000:]
    assert 'non-finite loss' not in out  # stopped before the model ran


@pytest.mark.timeout(300)
@pytest.mark.parametrize('channels', [1, 4])
def test_train_refuses_an_image_with_another_channel_count_naming_it(tmp_path, channels):
    image = (np.random.RandomState(0).rand(64, 64, channels) * 255).astype(np.uint8)
    root = _dataset(tmp_path / 'data', bad=('circle_bad.png', image[..., 0] if channels == 1 else image))
    out = _train(tmp_path, _options(root))
    assert 'ChannelMismatchError: train iteration 1: image ' in out, out[-3000:]
    assert ('circle_bad.png, dataset index 0, batch position' in out
            and f'has {channels} channel(s) (shape ({channels}, 64, 64)) but the model expects 3' in out), out[-3000:]


@pytest.mark.timeout(300)
def test_train_refuses_num_classes_that_disagree_with_the_dataset(tmp_path):
    out = _train(tmp_path, ['model.head.num_classes=5', 'data_preprocessor.num_classes=5',
                            'train_dataloader.dataset.indices=4'])
    assert ("NumClassesMismatchError: model.head.num_classes=5 but train_dataloader's CustomDataset has 4 classes "
            '(circle, cross, square, triangle)') in out, out[-3000:]


@pytest.mark.timeout(300)
def test_train_refuses_an_empty_image_list_naming_the_annotation_file(tmp_path):
    root = _dataset(tmp_path / 'data')
    (tmp_path / 'data' / 'train.txt').write_text('')  # an image list with no line
    out = _train(tmp_path, [f'train_dataloader.dataset.data_root={root}', 'train_dataloader.dataset.data_prefix=',
                            'train_dataloader.dataset.ann_file=train.txt'])
    assert f'EmptyImageListError: train_dataloader.dataset.ann_file: {root}/train.txt lists no image' in out, \
        out[-3000:]
    assert 'Iter(train)' not in out


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """An untrained checkpoint of the demo model (the tests stop before any prediction is used)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mixformer_mm  # noqa: F401
    cfg = Config.fromfile(os.path.join(REPO, DEMO_CLS))
    init_default_scope(cfg.default_scope)
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('checkpoint') / 'demo.pth')
    torch.save({'state_dict': MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor)).state_dict(),
                'meta': {}}, path)
    return path


@pytest.mark.timeout(300)
def test_test_tool_refuses_a_nan_image_naming_it(tmp_path, checkpoint):
    root = _dataset(tmp_path / 'data', bad=('circle_bad.tif', _float_image(float('nan'))))
    out = _run(['tools/test.py', DEMO_CLS, checkpoint, '--cfg-options'] + _options(root, 'test'), tmp_path)
    assert 'NonFiniteInputError: test batch 0: image ' in out, out[-3000:]
    assert 'circle_bad.tif, dataset index 0, batch position 0 holds 1 NaN and 0 infinite value(s)' in out


@pytest.mark.timeout(300)
def test_test_tool_refuses_num_classes_that_disagree_with_the_dataset(tmp_path, checkpoint):
    root = _dataset(tmp_path / 'data', classes=CLASSES[:3])
    out = _run(['tools/test.py', DEMO_CLS, checkpoint, '--cfg-options', f'test_dataloader.dataset.data_root={root}',
                'test_dataloader.dataset.data_prefix=',
                'test_dataloader.dataset.metainfo.classes=[circle,cross,square]'], tmp_path)
    assert "NumClassesMismatchError: model.head.num_classes=4 but test_dataloader's CustomDataset has 3" in out, \
        out[-3000:]


@pytest.mark.timeout(300)
def test_image_demo_refuses_an_empty_folder(tmp_path, checkpoint):
    os.makedirs(tmp_path / 'images')
    result = subprocess.run([sys.executable, 'demo/image_demo.py', str(tmp_path / 'images'), DEMO_CLS, '--weights',
                             checkpoint, '--out-dir', str(tmp_path / 'out')], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert result.returncode == 1, result.stdout[-3000:]
    assert f'image_demo.py: error: folder {tmp_path / "images"} holds no image' in result.stdout, result.stdout
