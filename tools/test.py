"""Evaluate a checkpoint with the config's test set and metric; the flags mean what they mean in the config's codebase.

    python tools/test.py CONFIG CHECKPOINT [--out PATH [--out-item pred|metrics]] [--tta]
                         [--show [--wait-time S]] [--show-dir DIR] [--interval N] [--cfg-options k=v ...]
    bash tools/dist_test.sh CONFIG CHECKPOINT 8 [same flags]

--out, by default_scope:
    mmdet       pickle of the predictions (mmdet's DumpDetResults: masks RLE-encoded, no ground truth)
    mmpretrain  pickle of the predictions (mmengine's DumpResults), or with --out-item metrics the metrics
                (.json, .yaml or .pkl by the extension)
    mmseg       folder of predicted label maps, one PNG per image (the metric's output_dir, keep_results=True)
Each file appears complete under its name or not at all.
"""
import argparse
import copy
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import ConfigDict, DictAction  # noqa: E402

import mixformer_mm  # noqa: E402,F401
from mixformer_mm.engine import check_data, check_model_types, load_config, setup_distributed  # noqa: E402
from mixformer_mm.engine.broken_data import guard_pipelines  # noqa: E402
from mixformer_mm.engine.reliability import (DEFAULT_TEST_HOOKS, add_default_hooks,  # noqa: E402
                                             check_checkpoint_readable)

PICKLE_SUFFIXES = ('.pkl', '.pickle')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a checkpoint (mmpretrain, mmdet or mmseg config)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the test log goes (default: work_dirs/<config name>)')
    parser.add_argument('--out', help='mmdet, mmpretrain: pickle file of the predictions; mmseg: folder of '
                        'predicted label maps (PNG)')
    parser.add_argument('--out-item', choices=['pred', 'metrics'],
                        help='mmpretrain: what --out holds, the predictions (default) or the metrics')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation with the config's tta_model and tta_pipeline (mmdet and "
                        'mmpretrain fall back to flip TTA when the config has none)')
    parser.add_argument('--show', action='store_true', help='show each prediction in a window')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds each window of --show stays open')
    parser.add_argument('--show-dir', help='draw predictions into this folder (mmdet: under <work dir>/<timestamp>/; '
                        'mmseg: <show dir>/vis_data/vis_image/; mmpretrain: the folder itself)')
    parser.add_argument('--interval', type=int,
                        help='mmpretrain: draw every N-th image (default 1); mmseg: every N-th batch (default: the '
                        "config's); mmdet draws every test image")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.out_item and not args.out:
        parser.error('--out-item needs --out')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def add_visualisation(cfg, args) -> None:
    """Switch the visualization hook on for --show/--show-dir as each codebase's tools/test.py does."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise KeyError('--show and --show-dir need default_hooks.visualization in the config')
    hook = hooks.visualization
    scope = cfg.get('default_scope')
    if scope == 'mmpretrain':
        hook.enable = True
        hook.show = args.show
        hook.wait_time = args.wait_time
        hook.out_dir = args.show_dir
        hook.interval = args.interval or 1
        return
    if scope == 'mmdet':
        from mmdet.engine.hooks.utils import trigger_visualization_hook
        trigger_visualization_hook(cfg, args)
    else:
        hook.draw = True
        if args.show:
            hook.show = True
            hook.wait_time = args.wait_time
        if args.show_dir:  # SegVisualizationHook has no folder of its own: it draws through the visualizer
            cfg.visualizer.save_dir = args.show_dir
    if args.interval and scope == 'mmdet':
        warnings.warn('--interval: mmdet\'s DetVisualizationHook draws every test image whatever its interval')
    elif args.interval:
        hook.interval = args.interval


def _innermost_dataset(dataloader_cfg):
    dataset = dataloader_cfg.dataset
    while 'dataset' in dataset:  # wrappers (ClassBalancedDataset, ...) keep the pipeline on the dataset they wrap
        dataset = dataset.dataset
    return dataset


def _flip_tta_pipeline(test_pipeline: list, packer: dict) -> list:
    pipeline = copy.deepcopy(test_pipeline)
    pipeline[-1] = dict(type='TestTimeAug', transforms=[
        [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
        [packer],
    ])
    return pipeline


def use_tta(cfg) -> None:
    """Wrap the model in ``tta_model`` and test through ``tta_pipeline``; mmdet's and mmpretrain's defaults
    (horizontal flip, merged by NMS or by averaged scores) when the config lacks them, an error for mmseg."""
    scope = cfg.get('default_scope')
    dataset = _innermost_dataset(cfg.test_dataloader)
    missing = [key for key in ('tta_model', 'tta_pipeline') if key not in cfg]
    if missing and scope not in ('mmdet', 'mmpretrain'):
        raise KeyError(f"--tta needs {' and '.join(missing)} in the config ({scope} has no default), e.g. from "
                       f"{scope}'s dataset and model _base_ configs")
    for key in missing:
        warnings.warn(f'--tta: the config has no {key}; using {scope}\'s default flip test-time augmentation')
    if 'tta_model' in missing and scope == 'mmdet':
        cfg.tta_model = dict(type='DetTTAModel',
                             tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    elif 'tta_model' in missing:
        cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA')
    if 'tta_pipeline' in missing:
        if scope == 'mmdet':
            packer = dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                           'scale_factor', 'flip', 'flip_direction'))
        else:
            packer = dataset.pipeline[-1]
        cfg.tta_pipeline = _flip_tta_pipeline(dataset.pipeline, packer)
    _check_tta_supported(cfg, scope)
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    dataset.pipeline = cfg.tta_pipeline


def _check_tta_supported(cfg, scope: str) -> None:
    """Fail before building anything on combinations the codebases' TTA cannot run (they fail after the first
    batch, with less of an explanation)."""
    model = cfg.model
    predicts_masks = model.get('mask_head') or (model.get('roi_head') or {}).get('mask_head')
    if scope == 'mmdet' and str(cfg.tta_model.get('type')).endswith('DetTTAModel') and predicts_masks:
        raise ValueError('--tta: mmdet\'s DetTTAModel merges boxes only; this model also predicts instance masks '
                         '(mask_head), which mmdet 3.x test-time augmentation does not support')
    visualization = cfg.default_hooks.get('visualization') or {}
    if scope == 'mmpretrain' and visualization.get('enable'):
        raise ValueError('--tta cannot be combined with --show or --show-dir for an mmpretrain config: its '
                         'VisualizationHook draws single images, not the augmented views of a TTA batch')


def _evaluator_metrics(evaluator_cfg) -> list:
    if isinstance(evaluator_cfg, (list, tuple)):
        return list(evaluator_cfg)
    return list(evaluator_cfg.metrics) if 'metrics' in evaluator_cfg else [evaluator_cfg]


def check_out(args, scope: str) -> None:
    """Refuse an --out that cannot mean what the user expects before anything is built or run."""
    if not args.out:
        return
    if args.out_item and scope != 'mmpretrain':
        raise ValueError(f'--out-item is for mmpretrain configs; a {scope} config dumps its predictions')
    if scope == 'mmseg':
        if args.out.endswith(PICKLE_SUFFIXES):
            raise ValueError(f'--out {args.out}: for an mmseg config --out is a folder of predicted label maps '
                             '(PNG, as in mmseg), not a pickle file')
    elif args.out_item != 'metrics' and not args.out.endswith(PICKLE_SUFFIXES):
        raise ValueError(f'--out {args.out}: the predictions are dumped to a pickle file (.pkl or .pickle)')


def stage_segmentation_maps(cfg, out_dir: str) -> None:
    """mmseg writes the label maps through its metric's output_dir: aim it at a staging folder inside ``out_dir``,
    published when the test has finished, so that a map in ``out_dir`` is always complete."""
    from mixformer_mm.engine.dump import staging_dir
    for metric in _evaluator_metrics(cfg.test_evaluator):
        metric['output_dir'] = staging_dir(out_dir)
        metric['keep_results'] = True


def build_runner(args):
    check_checkpoint_readable(args.checkpoint)
    cfg = load_config(args.config, args.cfg_options)
    scope = cfg.get('default_scope')
    check_out(args, scope)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        add_visualisation(cfg, args)
    add_default_hooks(cfg, DEFAULT_TEST_HOOKS)
    check_data(cfg, ('test_dataloader', ))
    check_model_types(cfg)
    if args.tta:
        use_tta(cfg)
    guard_pipelines(cfg, ('test_dataloader', ))  # a missing, truncated or unreadable file: named, never skipped
    if args.out and scope == 'mmseg':
        stage_segmentation_maps(cfg, args.out)
    setup_distributed(cfg, args.launcher)

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.out and scope != 'mmseg' and args.out_item != 'metrics':
        from mixformer_mm.engine import dump
        dumper = dump.AtomicDumpDetResults if scope == 'mmdet' else dump.AtomicDumpResults
        runner.test_evaluator.metrics.append(dumper(out_file_path=args.out))
    return runner, scope


def main(argv=None):
    args = parse_args(argv)
    runner, scope = build_runner(args)
    metrics = runner.test()

    from mmengine.dist import is_main_process
    if not (args.out and is_main_process()):
        return metrics
    from mixformer_mm.engine import dump
    if scope == 'mmseg':
        count = dump.publish_staged(args.out)
        runner.logger.info(f'{count} predicted label maps are in {args.out}')
    elif args.out_item == 'metrics':
        dump.dump_atomically(metrics, args.out)
        runner.logger.info(f'The metrics have been saved to {args.out}.')
    return metrics


if __name__ == '__main__':
    main()
