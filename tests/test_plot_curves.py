"""tools/analysis_tools/plot_curves.py on a real demo run, and tools/train.py --tensorboard (off by default)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests'))
from config_checks import load_script  # noqa: E402

plot_curves = load_script('tools/analysis_tools/plot_curves.py', 'plot_curves')
DEMO_CLS = 'configs/demo/dgt-mini_demo_cls.py'  # the quickest demo to train
TRAIN_OPTIONS = ['train_cfg.max_iters=40', 'train_cfg.val_interval=20', 'default_hooks.logger.interval=10',
                 'default_hooks.checkpoint.interval=1000']


def _train(work_dir, *extra, options=TRAIN_OPTIONS):
    result = subprocess.run([sys.executable, 'tools/train.py', DEMO_CLS, '--work-dir', str(work_dir), *extra,
                             '--cfg-options', *options], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr[-3000:]


def _lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def _error(argv):
    with pytest.raises(SystemExit) as exc:
        plot_curves.main(argv)
    return str(exc.value.code)


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    """A 40-iteration demo run that validated twice: its work dir and its scalars.json."""
    work_dir = tmp_path_factory.mktemp('plot') / 'dgt-mini_demo_cls'
    _train(work_dir)
    scalars, = work_dir.glob('*/vis_data/scalars.json')
    return work_dir, scalars


@pytest.fixture
def second_run(demo_run, tmp_path):
    """Another work dir: the demo run's log with every loss halved and every accuracy raised by 10."""
    run = tmp_path / 'other' / '20990101_000000' / 'vis_data'
    run.mkdir(parents=True)
    with open(run / 'scalars.json', 'w') as f:
        for line in _lines(demo_run[1]):
            if 'loss' in line:
                line['loss'] /= 2
            if 'accuracy/top1' in line:
                line['accuracy/top1'] += 10
            f.write(json.dumps(line) + '\n')
    return tmp_path / 'other'


def test_parsed_series_are_the_logged_values(demo_run):
    work_dir, scalars = demo_run
    lines = _lines(scalars)
    assert plot_curves.find_scalars(work_dir) == [scalars]
    train, val = plot_curves.load_run(scalars)
    logged = [line for line in lines if 'loss' in line]
    assert train['loss'] == ([line['iter'] for line in logged], [line['loss'] for line in logged])
    assert train['loss'][0] == [10, 20, 30, 40]
    # mmengine logs both validations with step 0; the run's config places them at the iterations that validated
    assert [line['step'] for line in lines if 'accuracy/top1' in line] == [0, 0]
    assert val['accuracy/top1'] == ([20, 40], [line['accuracy/top1'] for line in lines if 'accuracy/top1' in line])
    assert 'time' not in val and 'step' not in train and 'lr' in train
    assert plot_curves.default_keys([('run', (train, val))]) == ['loss', 'accuracy/top1']


def test_validation_placement_without_and_with_the_config(tmp_path):
    # the demos' own schedule: logs every 20 iterations, one validation at 250
    records = [dict(iter=i, step=i, loss=1.0) for i in range(20, 260, 20)] + [{'accuracy/top1': 50.0, 'step': 0}]
    assert plot_curves.parse_series(records)[1]['accuracy/top1'][0] == [240]  # the last logged iteration
    config = tmp_path / 'config.py'
    config.write_text("train_cfg = dict(type='IterBasedTrainLoop', max_iters=250, val_interval=250)\n")
    assert plot_curves.parse_series(records, plot_curves.validation_schedule(config))[1]['accuracy/top1'][0] == [250]
    # epoch-based runs keep the last logged iteration
    config.write_text("train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=3, val_interval=1)\n")
    assert plot_curves.validation_schedule(config) is None


def test_two_runs_one_plot(demo_run, second_run, tmp_path, capsys):
    work_dir, scalars = demo_run
    out = tmp_path / 'figures' / 'curves.png'
    plot_curves.main([str(work_dir), str(second_run), '--out', str(out)])
    assert f'wrote {out} (loss, accuracy/top1)' in capsys.readouterr().out
    from PIL import Image
    with Image.open(out) as image:
        assert image.format == 'PNG' and image.size == (920, 330)
        assert len(image.convert('RGB').getcolors(1 << 16)) > 50  # drawn, not blank
    assert out.stat().st_size > 10_000

    runs = [(name, plot_curves.load_run(plot_curves.find_scalars(d)[0])) for name, d in
            (('A', work_dir), ('B', second_run))]
    fig = plot_curves.plot(runs, ['loss', 'accuracy/top1'], str(tmp_path / 'again.svg'))
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ['A', 'B'] and loss_ax.get_xlabel() == 'iteration'
    a_loss, b_loss = (list(line.get_ydata()) for line in loss_ax.lines)
    assert b_loss == [v / 2 for v in a_loss] == [line['loss'] / 2 for line in _lines(scalars) if 'loss' in line]
    assert [list(line.get_xdata()) for line in acc_ax.lines] == [[20, 40], [20, 40]]
    assert (tmp_path / 'again.svg').read_text().startswith('<?xml')


def test_newest_run_by_default_all_runs_on_request(demo_run, tmp_path):
    work_dir = tmp_path / 'work'
    shutil.copytree(demo_run[0], work_dir)
    (work_dir / '20990101_000000' / 'vis_data').mkdir(parents=True)  # a launch that has not logged yet
    older, = work_dir.glob('2*/vis_data/scalars.json')
    assert plot_curves.find_scalars(work_dir) == [older]
    newer = work_dir / '20990101_000000' / 'vis_data' / 'scalars.json'
    shutil.copy(older, newer)
    assert plot_curves.find_scalars(work_dir) == [newer]
    assert plot_curves.find_scalars(work_dir, all_runs=True) == [older, newer]
    assert plot_curves.find_scalars(newer.parent.parent) == [newer] == plot_curves.find_scalars(newer)
    assert plot_curves.run_name(newer) == 'work'
    assert plot_curves.run_name(newer, with_timestamp=True) == 'work/20990101_000000'


def test_errors_name_the_path_key_and_line(demo_run, tmp_path):
    work_dir, scalars = demo_run
    out = str(tmp_path / 'x.png')
    assert f'{tmp_path}/nope: no such work dir' in _error([str(tmp_path / 'nope'), '--out', out])
    (tmp_path / 'empty_dir').mkdir()
    assert f'{tmp_path}/empty_dir: no scalars.json found' in _error([str(tmp_path / 'empty_dir'), '--out', out])
    message = _error([str(work_dir), '--keys', 'loss', 'coco/bbox_mAP', '--out', out])
    assert 'no run has coco/bbox_mAP; the keys present are: ' in message
    assert 'loss' in message and 'accuracy/top1' in message and 'lr' in message
    assert 'cannot write' in _error([str(work_dir), '--out', str(tmp_path / 'x.docx')])
    assert '--legend has 2 names for 1 runs' in _error([str(work_dir), '--legend', 'a', 'b', '--out', out])

    lines = scalars.read_text().splitlines(keepends=True)
    broken = tmp_path / 'broken.json'
    broken.write_text(''.join(lines[:2]) + lines[2][:25] + '\n')
    assert f'{broken}:3: not JSON' in _error([str(broken), '--out', out])
    broken.write_text(lines[0] + '\n' + lines[1])
    assert f'{broken}:2: an empty line' in _error([str(broken), '--out', out])
    broken.write_text('')
    assert f'{broken} is empty' in _error([str(broken), '--out', out])
    assert not os.path.exists(out)

    import matplotlib
    matplotlib.use('Agg')  # what matplotlib falls back to without a display
    assert 'no display to show the figure on' in _error([str(work_dir)])


def _visualizer(config, *extra):
    train = load_script('tools/train.py', 'train_script')
    cfg = train.build_cfg(train.parse_args([config, '--work-dir', '/tmp/unused', *extra]))
    return cfg.visualizer.type, [backend['type'] for backend in cfg.visualizer.vis_backends]


VISUALIZERS = {
    'configs/demo/groupmixformer-m_demo_cls.py': 'UniversalVisualizer',
    'configs/demo/groupmixformer-m_demo_det.py': 'DetLocalVisualizer',
    'configs/demo/groupmixformer-m_demo_seg.py': 'SegLocalVisualizer',
}


CODEBASES = dict(argnames='config', argvalues=sorted(VISUALIZERS), ids=lambda p: p.split('_')[-1][:-3])


@pytest.mark.parametrize(**CODEBASES)
def test_tensorboard_config_line_keeps_the_visualizer(config, tmp_path):
    # the config line the README gives, in a user's config that inherits ours
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = ['{REPO / config}']\nvisualizer = dict(vis_backends=[dict(type='LocalVisBackend'), "
                     "dict(type='TensorboardVisBackend')])\n")
    from mmengine.config import Config
    cfg = Config.fromfile(str(child))
    assert cfg.visualizer.type == VISUALIZERS[config]
    assert [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend', 'TensorboardVisBackend']


@pytest.mark.parametrize(**CODEBASES)
def test_tensorboard_flag_is_opt_in_and_keeps_the_visualizer(config):
    assert _visualizer(config) == (VISUALIZERS[config], ['LocalVisBackend'])
    pytest.importorskip('tensorboard', reason='tools/train.py --tensorboard needs pip install tensorboard')
    assert _visualizer(config, '--tensorboard') == (VISUALIZERS[config], ['LocalVisBackend', 'TensorboardVisBackend'])


def test_tensorboard_flag_without_tensorboard_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'tensorboard', None)  # makes `import tensorboard` fail
    with pytest.raises(ImportError, match=r'--tensorboard needs the tensorboard package: pip install tensorboard'):
        _visualizer('configs/demo/groupmixformer-m_demo_cls.py', '--tensorboard')


def test_tensorboard_run_writes_the_logged_losses(tmp_path):
    pytest.importorskip('tensorboard', reason='tools/train.py --tensorboard needs pip install tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    _train(tmp_path, '--tensorboard', options=['train_cfg.max_iters=4', 'train_cfg.val_interval=4',
                                               'default_hooks.logger.interval=2',
                                               'default_hooks.checkpoint.interval=1000'])
    events, = tmp_path.glob('*/vis_data/events.out.tfevents.*')
    scalars, = tmp_path.glob('*/vis_data/scalars.json')  # LocalVisBackend is kept
    accumulator = EventAccumulator(str(events.parent))
    accumulator.Reload()
    logged = [line for line in _lines(scalars) if 'loss' in line]
    assert [(e.step, e.value) for e in accumulator.Scalars('loss')] == \
        [(line['step'], pytest.approx(line['loss'], rel=1e-6)) for line in logged]
    assert [e.step for e in accumulator.Scalars('loss')] == [2, 4]
    assert len(accumulator.Scalars('accuracy/top1')) == 1
