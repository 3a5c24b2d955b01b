"""Train a classifier, detector or segmentor; the config's ``default_scope`` decides which codebase runs it.

    python tools/train.py configs/demo/groupmixformer-m_demo_cls.py
    python tools/train.py CONFIG --work-dir work_dirs/x --resume            # continue from the latest checkpoint
    python tools/train.py CONFIG --tensorboard                              # also log to TensorBoard
    bash tools/dist_train.sh CONFIG 8                                       # 8 processes via torchrun

On SIGTERM or SIGUSR1 (Slurm's warning before a time limit or preemption) training finishes the current iteration,
saves it as the usual iter_N.pth (epoch-based loops: at the end of the current epoch, epoch_N.pth), and exits with
code 124 (REQUEUE_EXIT_CODE), after which `--resume` continues from that checkpoint; tools/slurm_train.sh requeues.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from mmengine.config import DictAction  # noqa: E402

import mixformer_mm  # noqa: E402,F401  (registers the backbones, makes checkpoints loadable)
from mixformer_mm.engine import check_data, check_model_types, load_config, setup_distributed  # noqa: E402
from mixformer_mm.engine.broken_data import guard_pipelines  # noqa: E402
from mixformer_mm.engine.preemption import REQUEUE_EXIT_CODE, PreemptionHook  # noqa: E402
from mixformer_mm.engine.reliability import (DEFAULT_TRAIN_HOOKS, add_default_hooks,  # noqa: E402
                                             install_atomic_checkpoint_saving, resolve_resume, use_safe_checkpoint_hook)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model (mmpretrain, mmdet or mmseg config)')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CHECKPOINT, or without a value from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by (total batch size / auto_scale_lr.base_batch_size)')
    parser.add_argument('--no-validate', action='store_true', help='skip validation during training')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_iters=100')
    parser.add_argument('--tensorboard', action='store_true',
                        help="also log scalars to TensorBoard (WORK_DIR/<timestamp>/vis_data/events.out.tfevents.*), "
                        "next to the config's own visualizer backends; needs `pip install tensorboard`")
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_cfg(args):
    cfg = load_config(args.config, args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        optim_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_type == 'AmpOptimWrapper':
            print('--amp: the config already uses AmpOptimWrapper', file=sys.stderr)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise KeyError(f'--auto-scale-lr needs auto_scale_lr.base_batch_size in {args.config}')
        cfg.auto_scale_lr.enable = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.tensorboard:
        add_tensorboard(cfg)
    if args.resume is not None:
        # mmengine's own auto-resume trusts last_checkpoint blindly; ours skips files a crash left broken
        cfg.resume, cfg.load_from = True, resolve_resume(cfg.work_dir, args.resume, log=_stderr)
    add_default_hooks(cfg, DEFAULT_TRAIN_HOOKS + (dict(type='CheckpointFitHook', strict=bool(cfg.get('resume'))), ))
    use_safe_checkpoint_hook(cfg)
    return cfg


def add_tensorboard(cfg):
    # mmengine forbids a key defined by two bases and replaces lists on merge, so a `_base_` file cannot add a
    # backend to the `visualizer` every runtime defines; appending here keeps the codebase's visualizer type and
    # its LocalVisBackend (scalars.json, which tools/analysis_tools/plot_curves.py reads).
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard's SummaryWriter, which mmengine uses, needs it)
    except ImportError:
        raise ImportError('--tensorboard needs the tensorboard package: pip install tensorboard '
                          '(or pip install -e ".[tensorboard]")') from None
    if cfg.get('visualizer') is None:  # what mmengine's Runner builds without one
        cfg.visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    backends = list(cfg.visualizer.get('vis_backends') or [])
    if not any(backend.get('type') == 'TensorboardVisBackend' for backend in backends):
        backends.append(dict(type='TensorboardVisBackend'))
    cfg.visualizer.vis_backends = backends


def _stderr(message):
    print(message, file=sys.stderr, flush=True)


def main(argv=None):
    args = parse_args(argv)
    cfg = build_cfg(args)
    check_data(cfg, ('train_dataloader', ) if args.no_validate else ('train_dataloader', 'val_dataloader'))
    check_model_types(cfg)
    guard_pipelines(cfg)  # broken files: an error naming file and index, or with broken_data.action=skip skipped
    add_default_hooks(cfg, (dict(type='BrokenDataHook'), ))
    setup_distributed(cfg, args.launcher)
    install_atomic_checkpoint_saving()

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()
    stopped = next((h for h in runner.hooks if isinstance(h, PreemptionHook) and h.preempted), None)
    if stopped is not None:
        _stderr(f'training stopped early at a signal ({stopped.received or "received on another rank"}) with '
                f'checkpoint {stopped.checkpoint}; exit code {REQUEUE_EXIT_CODE} asks for a requeue, and '
                f'`tools/train.py {args.config} --work-dir {cfg.work_dir} --resume` continues')
        sys.exit(REQUEUE_EXIT_CODE)


if __name__ == '__main__':
    main()
