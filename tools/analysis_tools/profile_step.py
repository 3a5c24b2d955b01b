"""Where one step of a backbone spends its time: torch.profiler's operator table for a forward (or forward + backward).

    python tools/analysis_tools/profile_step.py groupmixformer-t --train --batch-size 2 --threads 1
    python tools/analysis_tools/profile_step.py dgt-t --shape 1024 --group-by-shape --ops aten::bmm aten::copy_

Targets are named as in ``benchmark.py`` (``<model>-<arch>`` or a config file). One untimed step runs first; the
table is sorted by self CPU time, and its last line is the step's total (the figure to compare before and after a
change, on the same machine, back to back). For speed comparisons between models use ``benchmark.py``.
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from benchmark import _outputs_mean, build_target  # noqa: E402


def profile_step(target: str, shape, batch_size: int = 2, train: bool = False):
    from torch.profiler import ProfilerActivity, profile
    torch.manual_seed(0)
    model = build_target(target)
    model.train(train)
    inputs = torch.randn(batch_size, 3, *shape)

    def step():
        if train:
            _outputs_mean(model(inputs)).backward()
        else:
            with torch.no_grad():
                model(inputs)

    step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    return prof


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('target', help='e.g. groupmixformer-t, or a config file')
    parser.add_argument('--shape', type=int, nargs='+', default=[224], help='input H [W]')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--train', action='store_true', help='profile forward + backward')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--rows', type=int, default=20)
    parser.add_argument('--group-by-shape', action='store_true', help='one row per operator and input shapes')
    parser.add_argument('--ops', nargs='+', default=None, help='only these operators, e.g. aten::copy_')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    prof = profile_step(args.target, (args.shape[0], args.shape[-1]), args.batch_size, args.train)
    events = prof.key_averages(group_by_input_shape=args.group_by_shape)
    total_ms = sum(e.self_cpu_time_total for e in events) / 1000
    if args.ops:
        events = [e for e in events if e.key in args.ops]
    events = sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.rows]
    print(f'| operator | calls | self CPU ms | share % |{" input shapes |" if args.group_by_shape else ""}')
    print(f'|---|---|---|---|{"---|" if args.group_by_shape else ""}')
    for e in events:
        shapes = f' {str(e.input_shapes)[:100]} |' if args.group_by_shape else ''
        ms = e.self_cpu_time_total / 1000
        print(f'| {e.key} | {e.count} | {ms:.1f} | {100 * ms / total_ms:.1f} |{shapes}')
    mode = 'forward + backward' if args.train else 'forward (no grad)'
    print(f'\nstep total: {total_ms:.1f} ms self CPU ({mode}, batch {args.batch_size}, '
          f'{args.shape[0]}x{args.shape[-1]}, {torch.get_num_threads()} threads)')
    return total_ms


if __name__ == '__main__':
    main()
