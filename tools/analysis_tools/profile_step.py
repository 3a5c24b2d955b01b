"""Where one step of a backbone spends its time: torch.profiler's operator table for a forward (or forward + backward).

    python tools/analysis_tools/profile_step.py groupmixformer-t --train --batch-size 2 --threads 1
    python tools/analysis_tools/profile_step.py dgt-t --shape 1024 --group-by-shape --ops aten::bmm aten::copy_
    python tools/analysis_tools/profile_step.py glnet-4g --device cuda --precision bf16 --batch-size 128

Targets are named as in ``benchmark.py`` (``<model>-<arch>`` or a config file). One untimed step runs first; the
table is sorted by self time on the device (CPU, or the GPU's kernels with ``--device cuda``), and its last line is the
step's total (the figure to compare before and after a change, on the same machine, back to back). For speed
comparisons between models use ``benchmark.py``.
"""
import argparse
import os.path as osp
import sys

import torch
from torch.autograd import DeviceType

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from benchmark import PRECISIONS, _outputs_mean, autocast_dtype, build_target  # noqa: E402


def profile_step(target: str, shape, batch_size: int = 2, train: bool = False, device: str = 'cpu',
                 precision: str = 'fp32'):
    from torch.profiler import ProfilerActivity, profile
    torch.manual_seed(0)
    model = build_target(target).to(device)
    model.train(train)
    inputs = torch.randn(batch_size, 3, *shape, device=device)
    dtype = autocast_dtype(precision)

    def step():
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            if train:
                _outputs_mean(model(inputs)).backward()
            else:
                with torch.no_grad():
                    model(inputs)

    step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == 'cuda' else [])
    with profile(activities=activities, record_shapes=True) as prof:
        step()
        if device == 'cuda':
            torch.cuda.synchronize()
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
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--precision', default='fp32', choices=PRECISIONS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    prof = profile_step(args.target, (args.shape[0], args.shape[-1]), args.batch_size, args.train, args.device,
                        args.precision)
    on_gpu = args.device == 'cuda'
    where = 'GPU' if on_gpu else 'CPU'

    def self_us(event):
        return event.self_device_time_total if on_gpu else event.self_cpu_time_total

    events = prof.key_averages(group_by_input_shape=args.group_by_shape)
    if on_gpu:
        # A GPU kernel's time is listed twice, as its own row and as the self time of the operator that launched it:
        # the total sums the kernels, the table lists the operators.
        total_ms = sum(self_us(e) for e in events if e.device_type != DeviceType.CPU) / 1000
        events = [e for e in events if e.device_type == DeviceType.CPU]
    else:
        total_ms = sum(self_us(e) for e in events) / 1000
    if args.ops:
        events = [e for e in events if e.key in args.ops]
    events = sorted(events, key=lambda e: -self_us(e))[:args.rows]
    print(f'| operator | calls | self {where} ms | share % |{" input shapes |" if args.group_by_shape else ""}')
    print(f'|---|---|---|---|{"---|" if args.group_by_shape else ""}')
    for e in events:
        shapes = f' {str(e.input_shapes)[:100]} |' if args.group_by_shape else ''
        ms = self_us(e) / 1000
        print(f'| {e.key} | {e.count} | {ms:.1f} | {100 * ms / total_ms:.1f} |{shapes}')
    mode = 'forward + backward' if args.train else 'forward (no grad)'
    threads = '' if on_gpu else f', {torch.get_num_threads()} threads'
    print(f'\nstep total: {total_ms:.1f} ms self {where} ({mode}, batch {args.batch_size}, '
          f'{args.shape[0]}x{args.shape[-1]}, {args.precision}{threads})')
    return total_ms


if __name__ == '__main__':
    main()
