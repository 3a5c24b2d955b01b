"""Training curves from mmengine's vis_data/scalars.json: losses and validation metrics, several runs on one plot.

    python tools/analysis_tools/plot_curves.py work_dirs/groupmixformer-m_demo_cls --out curves.png
    python tools/analysis_tools/plot_curves.py work_dirs/a work_dirs/b --keys loss accuracy/top1 --legend A B \
        --out ab.png

Each RUN is a work dir, one of its timestamped run folders, or a scalars.json file. tools/train.py adds a timestamped
folder to the work dir at every launch (a resumed run too); the newest one that has a vis_data/scalars.json is
plotted, or each of them as its own line with --all-runs.

The x axis is the training iteration. mmengine records validation metrics with step = epoch (0 in iteration-based
runs), so they are placed by other means: for an iteration-based run at the iteration that validated, worked out from
the train_cfg in the vis_data/config.py that mmengine saves beside scalars.json; otherwise (epoch-based runs, no
readable config) at the last training iteration logged before them.
"""
import argparse
import json
import math
import re
import sys
from pathlib import Path

# Bookkeeping every scalars.json line carries; not curves.
POSITION_KEYS = {'iter', 'step', 'epoch'}
# A validation line's timings describe the validation loop, not the model.
VALIDATION_TIMINGS = {'time', 'data_time'}


class CurveError(Exception):
    pass


def find_scalars(path, all_runs=False):
    """The scalars.json files RUN stands for, oldest first."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CurveError(f'{path}: no such work dir, run folder or scalars.json')
    for direct in (path / 'scalars.json', path / 'vis_data' / 'scalars.json'):
        if direct.is_file():
            return [direct]
    # mmengine names run folders %Y%m%d_%H%M%S, so sorting by name sorts by time
    found = sorted(path.glob('*/vis_data/scalars.json'))
    if not found:
        raise CurveError(f'{path}: no scalars.json found (looked for {path}/*/vis_data/scalars.json; '
                         'tools/train.py writes it at the first logged iteration)')
    return found if all_runs else found[-1:]


def run_name(scalars, with_timestamp=False):
    run_dir = scalars.parent.parent if scalars.parent.name == 'vis_data' else scalars.parent
    if re.fullmatch(r'\d{8}_\d{6}', run_dir.name):
        return f'{run_dir.parent.name}/{run_dir.name}' if with_timestamp else run_dir.parent.name
    return run_dir.name


def read_records(scalars):
    records = []
    with open(scalars, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                # a run killed mid-write leaves a truncated last line; say where, rather than plot half a run
                what = 'an empty line' if not line.strip() else f'not JSON ({e.msg})'
                raise CurveError(f'{scalars}:{number}: {what}') from None
            if not isinstance(record, dict):
                raise CurveError(f'{scalars}:{number}: not a JSON object')
            records.append(record)
    if not records:
        raise CurveError(f'{scalars} is empty: the run has logged nothing yet')
    return records


def validation_schedule(config_file):
    """A function (last logged iteration, previous validation's iteration) -> this validation's iteration, from an
    iteration-based train_cfg (IterBasedTrainLoop validates when iter % val_interval == 0 or iter == max_iters, from
    val_begin on); None when the run is epoch-based or its config cannot be read."""
    if not config_file.is_file():
        return None
    from mmengine.config import Config
    try:
        # the dumped config is flat; its custom_imports (mixformer_mm, torch) are not needed to read train_cfg
        train_cfg = Config.fromfile(str(config_file), import_custom_modules=False).get('train_cfg') or {}
    except Exception:
        return None  # an unreadable config only costs the exact placement
    iter_based = str(train_cfg.get('type', '')).endswith('IterBasedTrainLoop') or train_cfg.get('by_epoch') is False
    if not iter_based or 'max_iters' not in train_cfg or train_cfg.get('dynamic_intervals'):
        return None
    max_iters, interval = train_cfg['max_iters'], train_cfg.get('val_interval', 1000)
    begin = train_cfg.get('val_begin', 1)

    def at(last_logged, previous):
        # validation at iteration v is logged after the training log of v, and two may follow each other
        first = max(last_logged, previous + 1, begin)
        if first > max_iters:
            return None
        return min(math.ceil(first / interval) * interval, max_iters)

    return at


def parse_series(records, schedule=None):
    """(training, validation): each maps a key to (iterations, values) in the order logged."""
    train, val = {}, {}
    last_logged = previous_val = 0
    for record in records:
        if 'iter' in record:  # mmengine's LogProcessor adds 'iter' to training lines only
            last_logged = x = record['iter']
            target, skip = train, POSITION_KEYS
        else:
            x = (schedule and schedule(last_logged, previous_val)) or last_logged
            previous_val = x
            target, skip = val, POSITION_KEYS | VALIDATION_TIMINGS
        for key, value in record.items():
            if key not in skip and isinstance(value, (int, float)) and not isinstance(value, bool):
                xs, ys = target.setdefault(key, ([], []))
                xs.append(x)
                ys.append(float(value))
    return train, val


def load_run(scalars):
    return parse_series(read_records(scalars), validation_schedule(scalars.parent / 'config.py'))


def default_keys(runs):
    """Every loss (the total 'loss' first) and every validation metric any run has, in the order first met."""
    keys = []
    for _, (train, _) in runs:
        keys += [k for k in sorted(train, key=lambda k: k != 'loss') if 'loss' in k and k not in keys]
    for _, (_, val) in runs:
        keys += [k for k in val if k not in keys]
    return keys


def plot(runs, keys, out=None):
    """The figure, written to `out` or shown; runs are (name, (training, validation)) pairs."""
    import matplotlib
    if out is not None:
        matplotlib.use('Agg')  # writing a file needs no display
    import matplotlib.pyplot as plt
    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.3 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for color, (label, (train, val)) in enumerate(runs):
            # validations are few: markers make single points visible
            style = dict(marker='o', markersize=4) if key in val and key not in train else {}
            xs, ys = train.get(key) or val.get(key) or ([], [])
            if xs:
                ax.plot(xs, ys, color=f'C{color}', label=label, linewidth=1.3, **style)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.flat[len(keys):]:
        ax.axis('off')
    fig.tight_layout()
    if out is None:
        plt.show()
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    return fig


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Plot losses and validation metrics from mmengine vis_data/scalars.json files: one subplot per '
        'key, one line per run, x axis = training iteration.',
        epilog='In a work dir with several timestamped runs (one per tools/train.py launch) the newest that has a '
        'vis_data/scalars.json is used, unless --all-runs.')
    parser.add_argument('runs', nargs='+', metavar='RUN', help='a work dir, a timestamped run folder in one, or a '
                        'scalars.json file')
    parser.add_argument('--keys', nargs='+', help='keys to plot, e.g. loss accuracy/top1 coco/bbox_mAP mIoU lr '
                        '(default: every loss and every validation metric present)')
    parser.add_argument('--legend', nargs='+', help='a name per run (default: the work dir names)')
    parser.add_argument('--all-runs', action='store_true', help='plot every timestamped run of each work dir')
    parser.add_argument('--out', help='write the figure to this file (.png, .pdf, .svg, ...) instead of showing it')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.out is None:
            import matplotlib.pyplot as plt
            if plt.get_backend().lower() == 'agg':
                raise CurveError('no display to show the figure on (matplotlib fell back to Agg): pass --out FILE')
        else:
            from matplotlib.backend_bases import FigureCanvasBase
            suffix = Path(args.out).suffix.lstrip('.').lower()
            supported = FigureCanvasBase.get_supported_filetypes()
            if suffix not in supported:
                raise CurveError(f'--out {args.out}: matplotlib cannot write {suffix or "a file without suffix"!r} '
                                 f'(it writes {", ".join(sorted(supported))})')
        files = [f for run in args.runs for f in find_scalars(run, args.all_runs)]
        names = [run_name(f, args.all_runs) for f in files]
        if len(set(names)) < len(names):
            names = [run_name(f, with_timestamp=True) for f in files]
        if args.legend is not None:
            if len(args.legend) != len(files):
                raise CurveError(f'--legend has {len(args.legend)} names for {len(files)} runs: '
                                 + ', '.join(map(str, files)))
            names = args.legend
        runs = [(name, load_run(f)) for name, f in zip(names, files)]
        present = [k for _, (train, val) in runs for k in (*train, *val)]
        keys = args.keys or default_keys(runs)
        missing = [k for k in keys if k not in present]
        if missing:
            raise CurveError(f'no run has {", ".join(missing)}; the keys present are: '
                             + ', '.join(dict.fromkeys(present)))
        if not keys:
            raise CurveError('the runs have no loss and no validation metric; pick keys with --keys from: '
                             + ', '.join(dict.fromkeys(present)))
        for name, f in zip(names, files):
            print(f'{name}: {f}')
        import matplotlib.pyplot as plt
        plt.close(plot(runs, keys, args.out))
    except CurveError as e:
        sys.exit(f'plot_curves.py: {e}')
    if args.out is not None:
        print(f'wrote {args.out} ({", ".join(keys)})')


if __name__ == '__main__':
    main()
