"""Evaluate a checkpoint with the config's test set and metric.

    python tools/test.py CONFIG CHECKPOINT [--out results.pkl] [--show-dir vis]
    bash tools/dist_test.sh CONFIG CHECKPOINT 8
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mixformer_mm  # noqa: E402,F401
from mixformer_mm.engine import check_data, check_model_types, load_config, setup_distributed  # noqa: E402
from mixformer_mm.engine.reliability import (DEFAULT_TEST_HOOKS, CheckpointError, add_default_hooks,  # noqa: E402
                                             checkpoint_problem)
from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a checkpoint (mmpretrain, mmdet or mmseg config)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the test log goes (default: work_dirs/<config name>)')
    parser.add_argument('--out', help='dump the raw predictions to this pickle file')
    parser.add_argument('--show-dir', help='draw predictions into this folder (relative to the work dir)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def add_visualisation(cfg, show_dir):
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise KeyError('--show-dir needs default_hooks.visualization in the config')
    scope = cfg.get('default_scope')
    hooks.visualization.enable = True
    if scope == 'mmpretrain':
        hooks.visualization.out_dir = show_dir
    else:  # mmdet and mmseg draw into <work_dir>/<timestamp>/<test_out_dir>
        hooks.visualization.draw = True
        hooks.visualization.test_out_dir = show_dir


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    problem = checkpoint_problem(args.checkpoint)
    if problem:
        raise CheckpointError(f'checkpoint {args.checkpoint} cannot be read: {problem}')
    cfg = load_config(args.config, args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show_dir:
        add_visualisation(cfg, args.show_dir)
    add_default_hooks(cfg, DEFAULT_TEST_HOOKS)
    check_data(cfg, ('test_dataloader', ))
    check_model_types(cfg)
    setup_distributed(cfg, args.launcher)

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.out:
        from mixformer_mm.engine.dump import AtomicDumpResults
        runner.test_evaluator.metrics.append(AtomicDumpResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()
