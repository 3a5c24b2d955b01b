"""tools/test.py's flags as mmdet, mmseg and mmpretrain users know them: --out, --out-item, --tta, --show,
--wait-time, --show-dir, on the demo configs with untrained checkpoints and a few test images."""
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tests'))
from config_checks import load_script  # noqa: E402

DEMOS = {scope: osp.join(REPO, 'configs', 'demo', f'groupmixformer-m_demo_{task}.py')
         for scope, task in (('mmpretrain', 'cls'), ('mmdet', 'det'), ('mmseg', 'seg'))}
FOUR_IMAGES = ['test_dataloader.dataset.indices=4', 'test_dataloader.batch_size=2', 'test_dataloader.num_workers=0']
# Faster R-CNN out of the Mask R-CNN demo: mmdet's DetTTAModel merges boxes only.
BOXES_ONLY = ['model.roi_head.mask_head=None', 'model.roi_head.mask_roi_extractor=None', 'test_evaluator.metric=bbox']
# Runs tools/test.py as a script, reporting the class of the model that Runner.test evaluates.
REPORT_MODEL = '''
import runpy, sys
from mmengine.runner import Runner
run_test = Runner.test
def report_model(self):
    print('tested model:', type(self.model).__name__)
    return run_test(self)
Runner.test = report_model
sys.argv = ['tools/test.py'] + sys.argv[1:]
runpy.run_path('tools/test.py', run_name='__main__')
'''


@pytest.fixture(scope='module')
def test_tool():
    return load_script('tools/test.py', 'test_tool')


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """Untrained checkpoints: scope -> path, and 'boxes' for the demo detector without its mask head."""
    from mmengine.registry import MODELS, init_default_scope

    import mixformer_mm  # noqa: F401
    folder = tmp_path_factory.mktemp('checkpoints')
    paths = {}
    for name, config, options in [*((s, c, {}) for s, c in DEMOS.items()),
                                  ('boxes', DEMOS['mmdet'], {'model.roi_head.mask_head': None,
                                                             'model.roi_head.mask_roi_extractor': None})]:
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(options)
        init_default_scope(cfg.default_scope)
        torch.manual_seed(0)
        paths[name] = str(folder / f'{name}.pth')
        torch.save({'state_dict': MODELS.build(cfg.model).state_dict(), 'meta': {}}, paths[name])
    return paths


def _run(args, script=None):
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    command = [sys.executable, '-c', script, *args] if script else [sys.executable, 'tools/test.py', *args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.mark.parametrize('scope', sorted(DEMOS))
def test_show_and_show_dir_set_the_codebases_visualization_settings(scope, test_tool):
    cfg = Config.fromfile(DEMOS[scope])
    args = test_tool.parse_args([DEMOS[scope], 'x.pth', '--show', '--wait-time', '0.5', '--show-dir', 'painted'])
    test_tool.add_visualisation(cfg, args)
    hook = cfg.default_hooks.visualization
    assert hook.show is True and hook.wait_time == 0.5
    if scope == 'mmpretrain':
        assert hook.enable is True and hook.out_dir == 'painted' and hook.interval == 1
    else:
        assert hook.draw is True
        if scope == 'mmdet':
            assert hook.test_out_dir == 'painted'
        else:  # SegVisualizationHook has no folder argument: mmseg points the visualizer at the folder
            assert cfg.visualizer.save_dir == 'painted' and 'test_out_dir' not in hook

    cfg = Config.fromfile(DEMOS[scope])
    test_tool.add_visualisation(cfg, test_tool.parse_args([DEMOS[scope], 'x.pth', '--show-dir', 'painted']))
    assert not cfg.default_hooks.visualization.get('show', False)  # no window without --show


def test_det_out_is_mmdets_pickle_and_show_dir_draws(checkpoints, tmp_path):
    out = tmp_path / 'results.pkl'
    _run([DEMOS['mmdet'], checkpoints['mmdet'], '--work-dir', str(tmp_path), '--out', str(out), '--show-dir',
          'painted', '--cfg-options', *FOUR_IMAGES])
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 4
    for sample in predictions:
        assert 'gt_instances' not in sample and 'ignored_instances' not in sample
        masks = sample['pred_instances']['masks']
        assert len(masks) == len(sample['pred_instances']['bboxes']) > 0
        assert all(isinstance(m, dict) and set(m) == {'size', 'counts'} for m in masks)  # RLE, as mmdet dumps
    assert len(list(tmp_path.glob('*/painted/*.jpg'))) == 4  # <work dir>/<timestamp>/painted, as in mmdet
    assert not list(tmp_path.glob('results.pkl.tmp*'))


def test_seg_out_is_a_folder_of_label_maps_and_show_dir_draws(checkpoints, tmp_path):
    out, painted = tmp_path / 'maps', tmp_path / 'painted'
    _run([DEMOS['mmseg'], checkpoints['mmseg'], '--work-dir', str(tmp_path / 'work'), '--out', str(out),
          '--show-dir', str(painted), '--cfg-options', *FOUR_IMAGES, 'default_hooks.visualization.interval=1'])
    maps = sorted(os.listdir(out))
    assert maps == [f'ADE_validation_{i:08d}.png' for i in range(4)]  # the staging folder is gone
    for name in maps:
        label_map = np.asarray(Image.open(out / name))
        # reduce_zero_label: mmseg writes the dataset's labels back, 1 (background) to 4
        assert label_map.shape == (128, 128) and label_map.min() >= 1 and label_map.max() <= 4
    assert len(list(painted.glob('vis_data/vis_image/*.png'))) == 4


def test_cls_out_holds_predictions_or_metrics(checkpoints, tmp_path):
    predictions, metrics = tmp_path / 'pred.pkl', tmp_path / 'metrics.json'
    _run([DEMOS['mmpretrain'], checkpoints['mmpretrain'], '--work-dir', str(tmp_path), '--out', str(predictions),
          '--show-dir', str(tmp_path / 'painted'), '--cfg-options', *FOUR_IMAGES])
    with open(predictions, 'rb') as f:
        samples = pickle.load(f)
    assert len(samples) == 4 and all('pred_score' in s for s in samples)
    assert len(os.listdir(tmp_path / 'painted')) == 4
    _run([DEMOS['mmpretrain'], checkpoints['mmpretrain'], '--work-dir', str(tmp_path), '--out', str(metrics),
          '--out-item', 'metrics', '--cfg-options', *FOUR_IMAGES])
    with open(metrics) as f:
        assert set(json.load(f)) == {'accuracy/top1'}


def _seg_config_with_tta_pipeline(folder) -> str:
    path = folder / 'seg_tta.py'
    path.write_text(f"_base_ = {DEMOS['mmseg']!r}\n" + '''tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='RandomFlip', prob=1., direction='horizontal'),
         dict(type='RandomFlip', prob=0., direction='horizontal')],
        [dict(type='LoadAnnotations', reduce_zero_label=True)],
        [dict(type='PackSegInputs')]]),
]
''')
    return str(path)


@pytest.mark.parametrize('scope', sorted(DEMOS))
def test_tta_tests_the_tta_model(scope, checkpoints, tmp_path):
    config, checkpoint, options = DEMOS[scope], checkpoints[scope], []
    if scope == 'mmdet':
        checkpoint, options = checkpoints['boxes'], BOXES_ONLY
    elif scope == 'mmseg':  # the demo config has SegTTAModel but, like mmseg's demo-less configs, no pipeline
        config = _seg_config_with_tta_pipeline(tmp_path)
    output = _run([config, checkpoint, '--work-dir', str(tmp_path), '--tta', '--cfg-options', *FOUR_IMAGES,
                   *options], script=REPORT_MODEL)
    expected = {'mmpretrain': 'AverageClsScoreTTA', 'mmdet': 'DetTTAModel', 'mmseg': 'SegTTAModel'}[scope]
    assert f'tested model: {expected}' in output
    assert 'Iter(test) [2/2]' in output


def test_tta_defaults_and_refusals_name_what_is_missing(test_tool):
    cfg = Config.fromfile(DEMOS['mmdet'])
    cfg.merge_from_dict({'model.roi_head.mask_head': None})
    with pytest.warns(UserWarning, match='no tta_model'):
        test_tool.use_tta(cfg)
    assert cfg.model.type == 'DetTTAModel' and cfg.model.module.type == 'MaskRCNN'
    assert cfg.test_dataloader.dataset.pipeline[-1].type == 'TestTimeAug'

    with pytest.raises(ValueError, match='instance masks'):  # mmdet 3.x asserts after the first batch
        test_tool.use_tta(Config.fromfile(DEMOS['mmdet']))
    with pytest.raises(KeyError, match='--tta needs tta_pipeline in the config'):
        test_tool.use_tta(Config.fromfile(DEMOS['mmseg']))
    cfg = Config.fromfile(DEMOS['mmpretrain'])
    test_tool.add_visualisation(cfg, test_tool.parse_args([DEMOS['mmpretrain'], 'x.pth', '--show-dir', 'v']))
    with pytest.raises(ValueError, match='--show or --show-dir'):
        test_tool.use_tta(cfg)


@pytest.mark.parametrize('scope, out, out_item, message', [
    ('mmseg', 'maps.pkl', None, 'folder of predicted label maps'),
    ('mmdet', 'results.json', None, 'pickle file'),
    ('mmdet', 'results.pkl', 'metrics', '--out-item is for mmpretrain'),
])
def test_out_that_cannot_mean_what_the_codebase_means_is_refused(scope, out, out_item, message, test_tool):
    argv = [DEMOS[scope], 'x.pth', '--out', out] + (['--out-item', out_item] if out_item else [])
    with pytest.raises(ValueError, match=message):
        test_tool.check_out(test_tool.parse_args(argv), scope)
    test_tool.check_out(test_tool.parse_args([DEMOS['mmpretrain'], 'x.pth', '--out', 'm.json', '--out-item',
                                              'metrics']), 'mmpretrain')


def test_an_interrupted_dump_leaves_the_previous_file(tmp_path, monkeypatch):
    from mixformer_mm.engine import dump
    target = tmp_path / 'results.pkl'
    target.write_bytes(b'previous')

    def dump_half_then_fail(obj, file, file_format=None):
        with open(file, 'wb') as f:
            f.write(b'half a pickle')
        raise KeyboardInterrupt

    monkeypatch.setattr(dump, 'dump', dump_half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        dump.dump_atomically([1, 2], str(target))
    assert target.read_bytes() == b'previous' and os.listdir(tmp_path) == ['results.pkl']
    monkeypatch.undo()
    dump.dump_atomically({'a': 1}, str(tmp_path / 'metrics.json'))  # the format follows the final name
    assert (tmp_path / 'metrics.json').read_text() == '{"a": 1}'


def test_label_maps_appear_in_out_only_when_published(tmp_path):
    from mixformer_mm.engine.dump import publish_staged, staging_dir
    out = tmp_path / 'maps'
    staged = staging_dir(str(out))
    os.makedirs(staged)
    for name in ('a.png', 'b.png'):
        with open(osp.join(staged, name), 'wb') as f:
            f.write(b'png')
    assert os.listdir(out) == [osp.basename(staged)]  # a killed test leaves nothing under the final names
    assert publish_staged(str(out)) == 2
    assert sorted(os.listdir(out)) == ['a.png', 'b.png']
