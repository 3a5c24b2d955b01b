"""Parameter and FLOP counting that sees attention.

mmengine's FlopAnalyzer (fvcore's rules) traces the forward and counts the ops it has handlers for. It has none for
``aten::scaled_dot_product_attention``, so a model whose attention goes through SDPA would be undercounted by the
whole ``QK^T`` and ``AV`` cost. :func:`count_flops` adds that handler, and a second mechanism for work no tracer
can price (data-dependent selection such as top-k, gather, sort or scatter, or an op without a rule): a module
reports it through ``reset_uncounted_flops()`` and ``uncounted_flops() -> int``, the multiply-adds of its forwards
since the reset that the traced ops miss. Those are added once per module after tracing.

Modules should not do that accounting in their forward, which would then run on every training step: they derive
from :class:`UntracedFlopsMixin` and define ``untraced_flops(*forward_args)``, a function of the forward's
arguments (their shapes). :func:`count_flops` calls it from forward hooks that exist only while it counts
(:func:`untraced_flops_hooks`).

FLOPs here are multiply-adds: one fused multiply-add counts 1, as in fvcore, mmengine and the papers' tables.
"""
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Tuple

import torch
from torch import nn


def _shape(value) -> List[int]:
    return list(value.type().sizes())


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Multiply-adds of ``softmax(Q K^T) V``: ``B·L·S·E`` for the scores plus ``B·L·S·Ev`` for the weighted sum.

    Batch dimensions broadcast (grouped-query or expanded heads), so they are taken from the output.
    """
    query, key, value = (_shape(v) for v in inputs[:3])
    out = _shape(outputs[0])
    batch = 1
    for size in out[:-2]:
        batch *= size
    length, embed, keys, value_embed = query[-2], query[-1], key[-2], value[-1]
    return batch * length * keys * (embed + value_embed)


def baddbmm_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``beta * C + alpha * (A @ B)``: the multiply-adds of the batched product ``A @ B``, like ``bmm``."""
    batch, rows, inner = _shape(inputs[1])
    return batch * rows * inner * _shape(inputs[2])[-1]


EXTRA_HANDLES = {'aten::scaled_dot_product_attention': sdpa_flop_jit, 'aten::baddbmm': baddbmm_flop_jit}


class UntracedFlopsMixin:
    """For a module whose forward does multiply-adds the tracer cannot price.

    Define ``untraced_flops(self, *args, **kwargs) -> int``: those multiply-adds for one forward called with these
    arguments. While :func:`count_flops` counts, a forward hook adds it up per forward; ``uncounted_flops()`` then
    returns the total of that count. Outside counting no hook exists and the forward does no bookkeeping.
    """

    def untraced_flops(self, *args, **kwargs) -> int:
        raise NotImplementedError(f'{type(self).__name__} must define untraced_flops(*forward_args)')

    def reset_uncounted_flops(self) -> None:
        self._untraced_flops_counted = 0

    def uncounted_flops(self) -> int:
        """Untraced multiply-adds of the forwards seen by the hooks since the last reset (0 before any count)."""
        return getattr(self, '_untraced_flops_counted', 0)


def _add_untraced_flops(module: UntracedFlopsMixin, args: tuple, kwargs: dict, output) -> None:
    module._untraced_flops_counted = module.uncounted_flops() + int(module.untraced_flops(*args, **kwargs))


@contextmanager
def untraced_flops_hooks(model: nn.Module) -> Iterator[None]:
    """Within the block, every forward of a :class:`UntracedFlopsMixin` submodule adds its ``untraced_flops``."""
    handles = [module.register_forward_hook(_add_untraced_flops, with_kwargs=True)
               for module in model.modules() if isinstance(module, UntracedFlopsMixin)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _reset_uncounted(model: nn.Module) -> None:
    for module in model.modules():
        reset = getattr(module, 'reset_uncounted_flops', None)
        if callable(reset):
            reset()


def _sum_uncounted(model: nn.Module) -> Tuple[int, Dict[str, int]]:
    per_module = {}
    for name, module in model.named_modules():
        uncounted = getattr(module, 'uncounted_flops', None)
        if callable(uncounted):
            per_module[name] = int(uncounted())
    return sum(per_module.values()), per_module


def count_flops(model: nn.Module, inputs: Tuple[torch.Tensor, ...]) -> int:
    """Multiply-adds of ``model(*inputs)``: traced ops (with SDPA) plus what modules report as ``uncounted_flops``."""
    from mmengine.analysis import FlopAnalyzer
    _reset_uncounted(model)
    analyzer = FlopAnalyzer(model, inputs)
    for name, handle in EXTRA_HANDLES.items():
        analyzer.set_op_handle(name, handle)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad(), untraced_flops_hooks(model):
        traced = analyzer.total()
    analytic, _ = _sum_uncounted(model)
    return traced + analytic


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
