"""demo/image_demo.py on the demo images with checkpoints the demo configs train (a few iterations each): one
drawing of the input's size per image and a prediction of the task's kind; clear errors for missing files and for
a checkpoint of another model."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO, 'tools', 'train.py')
DEMO = osp.join(REPO, 'demo', 'image_demo.py')
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
ITERS = 4
CONFIGS = {task: osp.join('configs', 'demo', f'groupmixformer-m_demo_{task}.py') for task in ('cls', 'det', 'seg')}
IMAGES = {
    'cls': 'data/demo/cls/val/circle/circle_0000.jpg',
    'det': 'data/demo/coco/val/val_00000.jpg',
    'seg': 'data/demo/ade/images/validation/ADE_validation_00000000.jpg',
}
CLASSES = {
    'cls': ('circle', 'cross', 'square', 'triangle'),
    'det': ('circle', 'square', 'triangle'),
    'seg': ('background', 'circle', 'square', 'triangle'),
}
# After 4 iterations the detector scores every box below mmdet's default 0.05, so the test keeps them all
EXTRA = {'det': ['--pred-score-thr', '0', '--cfg-options', 'model.test_cfg.rcnn.score_thr=0']}


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """task -> checkpoint of the demo config after a few iterations (no validation: only the weights matter)."""
    found = {}
    for task, config in CONFIGS.items():
        work_dir = str(tmp_path_factory.mktemp(f'image_demo_{task}'))
        command = [sys.executable, TRAIN, config, '--work-dir', work_dir, '--no-validate', '--cfg-options',
                   f'train_cfg.max_iters={ITERS}', f'param_scheduler.0.end={ITERS // 2}',
                   f'param_scheduler.1.begin={ITERS // 2}', f'param_scheduler.1.end={ITERS}',
                   f'default_hooks.checkpoint.interval={ITERS}']
        result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, \
            f'training the {task} demo failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}'
        found[task] = osp.join(work_dir, f'iter_{ITERS}.pth')
        assert osp.isfile(found[task])
    return found


def _demo(*args):
    return subprocess.run([sys.executable, DEMO, *map(str, args)], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=300)


def _printed_results(stdout: str) -> list:
    """The --print-result lines (the codebases' loggers write to stdout as well)."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"image"')]


@pytest.mark.parametrize('task', ['cls', 'det', 'seg'])
def test_draws_the_prediction_of_each_task(task, checkpoints, tmp_path):
    image = IMAGES[task]
    out_dir = tmp_path / 'out'
    result = _demo(image, CONFIGS[task], '--weights', checkpoints[task], '--out-dir', out_dir, '--device', 'cpu',
                   '--print-result', *EXTRA.get(task, []))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stem = osp.splitext(osp.basename(image))[0]
    assert sorted(os.listdir(out_dir)) == [f'{stem}.png']
    with Image.open(image) as original, Image.open(out_dir / f'{stem}.png') as drawn:
        assert drawn.format == 'PNG'
        assert drawn.size == original.size
        width, height = original.size
        # the drawing differs from the input: something (label, boxes, colours) has been drawn on it
        assert drawn.convert('RGB').tobytes() != original.convert('RGB').tobytes()
    [printed] = _printed_results(result.stdout)
    assert printed['image'] == image and printed['out_file'] == str(out_dir / f'{stem}.png')
    prediction = printed['prediction']
    classes = CLASSES[task]
    if task == 'cls':
        assert printed['task'] == 'classification'
        assert prediction['pred_class'] == classes[prediction['pred_label']]
        scores = prediction['pred_scores']
        assert len(scores) == len(classes) and abs(sum(scores) - 1) < 1e-4
        assert prediction['pred_score'] == pytest.approx(max(scores))
    elif task == 'det':
        assert printed['task'] == 'detection'
        instances = prediction['instances']
        assert instances, 'with score thresholds 0 every box of the RoI head is printed'
        assert prediction['mask_shape'] == [height, width]
        for instance in instances:
            assert instance['class_name'] == classes[instance['label']]
            assert 0 <= instance['score'] <= 1
            x1, y1, x2, y2 = instance['bbox']
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
            assert 0 <= instance['mask_area'] <= width * height
    else:
        assert printed['task'] == 'segmentation'
        assert prediction['shape'] == [height, width]
        assert set(prediction['pixels']) <= set(classes)
        assert sum(prediction['pixels'].values()) == width * height


def test_a_folder_of_images_gives_one_drawing_each(checkpoints, tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    for name in ('circle_0000.jpg', 'circle_0001.jpg'):
        shutil.copy(osp.join(REPO, 'data/demo/cls/val/circle', name), folder / name)
    (folder / 'notes.txt').write_text('not an image')
    out_dir = tmp_path / 'out'
    result = _demo(folder, CONFIGS['cls'], '--weights', checkpoints['cls'], '--out-dir', out_dir, '--print-result',
                   '--resize', '128')
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(out_dir)) == ['circle_0000.png', 'circle_0001.png']
    with Image.open(out_dir / 'circle_0000.png') as drawn:
        assert drawn.size == (128, 128)  # --resize draws on an enlarged copy of the 64x64 image
    assert [osp.basename(r['image']) for r in _printed_results(result.stdout)] == ['circle_0000.jpg',
                                                                                   'circle_0001.jpg']


def test_a_checkpoint_of_another_model_is_refused_naming_the_keys(checkpoints, tmp_path):
    out_dir = tmp_path / 'out'
    result = _demo(IMAGES['det'], CONFIGS['det'], '--weights', checkpoints['cls'], '--out-dir', out_dir)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert f'checkpoint {checkpoints["cls"]} does not fit this MaskRCNN' in message
    assert 'missing keys' in message and 'neck.lateral_convs.0.conv.weight' in message
    assert 'unexpected keys' in message and 'head.fc.weight' in message
    assert 'Traceback' not in result.stderr
    assert not any(name.endswith('.png') for _, _, names in os.walk(out_dir) for name in names)


def test_a_classifier_with_a_segmentor_checkpoint_is_refused(checkpoints, tmp_path):
    # the classification path loads through its own code, not an Inferencer subclass: checked there as well
    result = _demo(IMAGES['cls'], CONFIGS['cls'], '--weights', checkpoints['seg'], '--out-dir', tmp_path / 'out')
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert 'does not fit this ImageClassifier' in message and 'decode_head.' in message


def test_missing_or_broken_inputs_are_named(checkpoints, tmp_path):
    out_dir = tmp_path / 'out'
    cases = [
        ((tmp_path / 'nope.jpg', CONFIGS['cls'], '--weights', checkpoints['cls']), f'image {tmp_path / "nope.jpg"} '
         'does not exist'),
        ((IMAGES['cls'], 'configs/demo/groupmixformer-m_demo_cl.py', '--weights', checkpoints['cls']),
         'config file configs/demo/groupmixformer-m_demo_cl.py does not exist. Did you mean: '
         'configs/demo/groupmixformer-m_demo_cls.py'),
        ((IMAGES['cls'], CONFIGS['cls'], '--weights', tmp_path / 'nope.pth'), f'checkpoint {tmp_path / "nope.pth"} '
         'does not exist'),
    ]
    truncated = tmp_path / 'truncated.pth'
    with open(checkpoints['cls'], 'rb') as f:
        truncated.write_bytes(f.read(1000))
    cases.append(((IMAGES['cls'], CONFIGS['cls'], '--weights', truncated), f'checkpoint {truncated} cannot be read'))
    for args, expected in cases:
        result = _demo(*args, '--out-dir', out_dir)
        assert result.returncode == 1, (args, result.stderr[-2000:])
        assert expected in result.stderr, (expected, result.stderr[-2000:])
        assert 'Traceback' not in result.stderr
    assert not out_dir.exists()
