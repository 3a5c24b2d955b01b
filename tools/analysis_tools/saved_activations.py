"""What a training forward keeps for the backward, by module: where a backbone's training memory goes.

    python tools/analysis_tools/saved_activations.py dgt-t swin-t convnext-t --shape 1024 --batch-size 1
    python tools/analysis_tools/saved_activations.py dgt-t --shape 1024 --by path --rows 12

Targets are named as in ``benchmark.py`` (``<model>-<arch>`` or a config file). One forward runs in training mode
under ``torch.autograd.graph.saved_tensors_hooks``; every tensor an operator saves for the backward is charged to
the innermost module running at that moment, once per storage (a tensor saved by several operators counts once,
for the first), and parameters are left out. The sum is the activation memory that the backward needs; the peak of
a training step adds the weights, their gradients, the optimizer state and the allocator's slack.
"""
import argparse
import collections
import os.path as osp
import sys
from typing import Dict

import torch
from torch import nn

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from benchmark import build_target  # noqa: E402


def saved_bytes_by_module(model: nn.Module, inputs: torch.Tensor, by: str = 'type') -> Dict[str, int]:
    """Bytes saved for the backward during one forward, keyed by the module that saved them: its type name
    (``by='type'``), or its path in the model with block indices folded (``by='path'``: ``stages.*.blocks.*.ffn``)."""
    if by == 'type':
        labels = {module: type(module).__name__ for module in model.modules()}
    else:
        labels = {module: '.'.join('*' if part.isdigit() else part for part in name.split('.')) or '(model)'
                  for name, module in model.named_modules()}
    running = []

    def enter(module, args):
        running.append(labels[module])

    def leave(module, args, output):
        running.pop()

    hooks = [register(hook) for module in model.modules()
             for register, hook in ((module.register_forward_pre_hook, enter), (module.register_forward_hook, leave))]
    # storages already charged; the parameters' count as charged from the start, so they never are
    counted = {p.untyped_storage().data_ptr() for p in model.parameters()}
    by_module = collections.Counter()

    def pack(tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in counted:
            counted.add(key)
            by_module[running[-1] if running else '(outside modules)'] += storage.nbytes()
        return tensor

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return dict(by_module)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('targets', nargs='+', help='e.g. dgt-t swin-t, or config files')
    parser.add_argument('--shape', type=int, nargs='+', default=[224], help='input H [W]')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--rows', type=int, default=8)
    parser.add_argument('--by', choices=['type', 'path'], default='type',
                        help="charge to the module's type, or to its path with block indices folded")
    args = parser.parse_args(argv)
    totals = {}
    for target in args.targets:
        torch.manual_seed(0)
        model = build_target(target)
        model.train()
        inputs = torch.randn(args.batch_size, 3, args.shape[0], args.shape[-1])
        by_module = saved_bytes_by_module(model, inputs, args.by)
        total = sum(by_module.values())
        totals[target] = total
        print(f'\n{target}, training forward, batch {args.batch_size}, {args.shape[0]}x{args.shape[-1]}: '
              f'{total / 2**20:.0f} MiB saved for the backward\n')
        print(f'| module {args.by} | MiB | share % |\n|---|--:|--:|')
        for name, size in sorted(by_module.items(), key=lambda kv: -kv[1])[:args.rows]:
            print(f'| {name} | {size / 2**20:.0f} | {100 * size / total:.1f} |')
    return totals


if __name__ == '__main__':
    main()
