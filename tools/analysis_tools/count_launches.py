"""Kernel launches and memory traffic of backbones beside their mmpretrain peers, counted exactly on the CPU.

    # the T sizes against the Swin and ConvNeXt of closest FLOPs, eager counts only
    python tools/analysis_tools/count_launches.py groupmixformer-t dgt-t glnet-4g maformer-s --batch-size 4
    # with inductor's generated kernels (compiles every model on the CPU: minutes each)
    python tools/analysis_tools/count_launches.py dgt-t --compile --compile-batch-size 2 --csv dgt.csv

Targets are named as in ``benchmark.py`` (``<model>-<arch>``, or a config file); backbones return their last stage,
with ``drop_path_rate=0.1``. ``--peers auto`` (default) adds the Swin and ConvNeXt whose FLOPs at 224x224 are
closest to each target's, and every ratio column divides a target's count by its Swin peer's.

Counted per model (``mixformer_mm.utils.launch_count`` says exactly what is counted):

- ``eval ops``, ``train ops``: aten ops that launch a kernel in one eval forward (``no_grad``) and in one training
  step (forward + backward of the outputs' mean), views excluded;
- ``eval MB/img``, ``train MB/img``: bytes of those ops' outputs, per image;
- ``deploy eval ops``, ``deploy eval MB/img``: the eval forward after ``switch_to_deploy()`` (BatchNorms folded
  into the layers that feed them), for our backbones;
- with ``--compile``: kernels inductor generates for the eval forward and for the training step (forward and
  backward graphs), and Dynamo's graph breaks in either (0 for every backbone here; a break is a second graph and a
  round trip through Python on every step).

Counts are independent of the machine's load and, but for the compiled figures' fusion choices, of the device.
"""
import argparse
import copy
import csv
import os
import os.path as osp
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from benchmark import (PEER_ARCHS, PEER_FAMILIES, build_target, closest_peers, count_flops_and_params,  # noqa: E402
                       parse_target)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from mixformer_mm.utils.launch_count import count_compiled, count_model_eager  # noqa: E402


@dataclass
class Counts:
    target: str
    batch_size: int
    shape: List[int]
    eval_ops: int
    train_ops: int
    eval_mb_per_img: float
    train_mb_per_img: float
    deploy_eval_ops: Optional[int] = None
    deploy_eval_mb_per_img: Optional[float] = None
    compile_batch_size: Optional[int] = None
    eval_kernels: Optional[int] = None
    train_kernels: Optional[int] = None
    graph_breaks: Optional[int] = None


def count_target(target: str, batch_size: int, shape, compile_batch_size: Optional[int] = None) -> Counts:
    torch.manual_seed(0)
    model = build_target(target)
    inputs = torch.randn(batch_size, 3, *shape)
    eval_count = count_model_eager(model, inputs, 'eval')
    train_count = count_model_eager(model, inputs, 'train')
    counts = Counts(target=target, batch_size=batch_size, shape=list(shape), eval_ops=eval_count.ops,
                    train_ops=train_count.ops, eval_mb_per_img=eval_count.bytes_written / batch_size / 1e6,
                    train_mb_per_img=train_count.bytes_written / batch_size / 1e6)
    if hasattr(model, 'switch_to_deploy'):
        deployed = copy.deepcopy(model)
        deployed.switch_to_deploy()
        deploy_count = count_model_eager(deployed, inputs, 'eval')
        counts.deploy_eval_ops = deploy_count.ops
        counts.deploy_eval_mb_per_img = deploy_count.bytes_written / batch_size / 1e6
    if compile_batch_size:
        small = torch.randn(compile_batch_size, 3, *shape)
        compiled_eval = count_compiled(model, small, 'eval')
        compiled_train = count_compiled(model, small, 'train')
        counts.compile_batch_size = compile_batch_size
        counts.eval_kernels = compiled_eval.kernels
        counts.train_kernels = compiled_train.kernels
        counts.graph_breaks = compiled_eval.graph_breaks + compiled_train.graph_breaks
    return counts


COLUMNS = [('eval_ops', 'eval ops'), ('train_ops', 'train ops'), ('eval_mb_per_img', 'eval MB/img'),
           ('train_mb_per_img', 'train MB/img'), ('deploy_eval_ops', 'deploy eval ops'),
           ('deploy_eval_mb_per_img', 'deploy eval MB/img'), ('eval_kernels', 'compiled eval kernels'),
           ('train_kernels', 'compiled train kernels'), ('graph_breaks', 'graph breaks')]
RATIO_KEYS = ('eval_ops', 'train_ops', 'eval_mb_per_img', 'deploy_eval_ops', 'deploy_eval_mb_per_img', 'eval_kernels',
              'train_kernels')


# the peers have no deploy form: a deployed count is compared with the peer's eval count
REFERENCE_KEY = {'deploy_eval_ops': 'eval_ops', 'deploy_eval_mb_per_img': 'eval_mb_per_img'}


def ratios(counts: Counts, reference: Optional[Counts]) -> Dict[str, Optional[float]]:
    out = {}
    for key in RATIO_KEYS:
        mine = getattr(counts, key)
        theirs = getattr(reference, REFERENCE_KEY.get(key, key)) if reference is not None else None
        out[key] = mine / theirs if mine is not None and theirs else None
    return out


def cells(counts: Counts, reference_name: Optional[str], reference: Optional[Counts]) -> Dict[str, object]:
    row = dict(model=counts.target, batch=counts.batch_size, input=f'{counts.shape[0]}x{counts.shape[1]}')
    for key, _ in COLUMNS:
        value = getattr(counts, key)
        row[key] = round(value, 1) if isinstance(value, float) else value
    row['reference'] = reference_name if reference is not None and reference_name != counts.target else ''
    for key, value in ratios(counts, reference).items():
        row[f'x_{key}'] = None if value is None or not row['reference'] else round(value, 2)
    return row


def markdown(rows: List[Dict[str, object]]) -> str:
    columns = [('model', 'model'), ('batch', 'batch'), ('input', 'input')]
    columns += [(k, t) for k, t in COLUMNS if any(r[k] is not None for r in rows)]
    columns += [('reference', 'x of')]
    columns += [(f'x_{k}', f'x {t}') for k, t in COLUMNS
                if k in RATIO_KEYS and any(r[f'x_{k}'] is not None for r in rows)]
    lines = ['| ' + ' | '.join(t for _, t in columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        lines.append('| ' + ' | '.join('' if row[k] is None else str(row[k]) for k, _ in columns) + ' |')
    return '\n'.join(lines)


def run(args) -> List[Dict[str, object]]:
    targets = list(dict.fromkeys(args.targets))
    for target in targets:
        parse_target(target)  # fail on a bad name before counting anything
    reference_of: Dict[str, Optional[str]] = {t: None for t in targets}
    if args.peers == ['auto']:
        flops = {f'{f}-{a}': count_flops_and_params(f'{f}-{a}', (224, 224))['flops']
                 for f in PEER_FAMILIES for a in PEER_ARCHS}
        for target in targets:
            if not target.endswith('.py') and target.partition('-')[0] not in PEER_FAMILIES:
                flops[target] = count_flops_and_params(target, (224, 224))['flops']
                peers = closest_peers(flops, target)
                targets += [p for p in peers if p not in targets]
                reference_of[target] = peers[0]  # the Swin
    elif args.peers != ['none']:
        for peer in args.peers:
            parse_target(peer)
        targets += [p for p in args.peers if p not in targets]
        reference_of = {t: args.peers[0] for t in targets}
    shape = args.hw or [args.shape, args.shape]
    counted: Dict[str, Counts] = {}
    for target in targets:
        print(f'counting {target} ...', file=sys.stderr, flush=True)
        compile_batch = args.compile_batch_size if args.compile else None
        counted[target] = count_target(target, args.batch_size, shape, compile_batch)
        print(f'  {counted[target]}', file=sys.stderr, flush=True)
    return [cells(c, reference_of.get(t), counted.get(reference_of.get(t))) for t, c in counted.items()]


def write_csv(rows: List[Dict[str, object]], path: str) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('targets', nargs='+', help='backbones (<model>-<arch>, e.g. dgt-t) or config files')
    parser.add_argument('--peers', nargs='+', default=['auto'],
                        help="'auto' (closest-FLOPs Swin and ConvNeXt), 'none', or backbone names (the first is "
                             'the reference of the ratios)')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--shape', type=int, default=224, help='square input size')
    parser.add_argument('--hw', type=int, nargs=2, metavar=('H', 'W'), help='a non-square input (overrides --shape)')
    parser.add_argument('--compile', action='store_true', help="also count inductor's kernels and graph breaks")
    parser.add_argument('--compile-batch-size', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None, help="torch CPU threads (counts do not depend on it)")
    parser.add_argument('--csv', default=None, help='also write the rows to this CSV file')
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.compile_batch_size < 1:
        parser.error('--batch-size and --compile-batch-size must be at least 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = run(args)
    command = ' '.join(sys.argv[1:] if argv is None else argv)
    print(f'\nCommand: python tools/analysis_tools/count_launches.py {command}')
    print(f'torch {torch.__version__}\n')
    print(markdown(rows))
    if args.csv:
        write_csv(rows, args.csv)
        print(f'\nCSV written to {args.csv}')
    return rows


if __name__ == '__main__':
    main()
