"""What a model launches and writes, counted exactly on the CPU.

At ImageNet sizes these backbones are bound on a GPU by kernel launches and memory traffic, not by FLOPs
(docs/speed_and_memory.md). Both can be counted without a GPU, and unlike a timing the counts do not
depend on the machine's load:

- :func:`count_eager` runs a step under a ``TorchDispatchMode`` and counts every aten op that reaches a kernel,
  with the bytes of the tensors each one returns (what it writes). Views and aliases (``view``, ``transpose``,
  ``expand``, ``detach``, ...), ``_unsafe_view`` and the uninitialised allocations (``empty*``) only make
  metadata, and ops that return no tensor (``promote_types``, size queries) answer on the host: none of these
  is counted. In-place ops count the tensor they write.
- :func:`count_compiled` compiles the model with inductor and reads the compiler's own counters: the kernels it
  generated (``torch._inductor.metrics.generated_kernel_count``) and the graph breaks Dynamo took. Extern calls
  (GEMMs, convolutions) are not generated kernels and are not in that figure.

A training step is the forward in train mode and the backward of the mean of the outputs; the optimizer's update
is not counted (it is one fused kernel per parameter group with a foreach or fused AdamW on a GPU).
"""
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

# Ops that produce no kernel although their schema is not an alias: a reshape of a fresh buffer, and allocations
# left uninitialised.
_METADATA_ONLY = frozenset({
    'aten::_unsafe_view', 'aten::empty', 'aten::empty_like', 'aten::empty_strided', 'aten::new_empty',
    'aten::new_empty_strided', 'aten::lift_fresh'
})


def _is_launch(func) -> bool:
    return not func.is_view and func._schema.name not in _METADATA_ONLY


@dataclass
class EagerCount:
    """Aten ops launched and bytes written by one step, with the count of each op (for finding the heavy ones)."""
    ops: int = 0
    bytes_written: int = 0
    by_op: Counter = field(default_factory=Counter)
    bytes_by_op: Counter = field(default_factory=Counter)


class _LaunchCounter(TorchDispatchMode):

    def __init__(self, count: EagerCount):
        super().__init__()
        self.count = count

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tensors = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        if tensors and _is_launch(func):
            written = sum(t.nbytes for t in tensors)
            name = func.overloadpacket.__name__
            self.count.ops += 1
            self.count.bytes_written += written
            self.count.by_op[name] += 1
            self.count.bytes_by_op[name] += written
        return out


def outputs_mean(outputs) -> torch.Tensor:
    """The sum over a (nested) tuple of tensors of each one's mean: one scalar to differentiate."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float().mean()
    return sum(outputs_mean(o) for o in outputs)


def count_eager(step: Callable[[], object]) -> EagerCount:
    """Count the aten ops ``step()`` launches (the autograd engine's included) and the bytes they write."""
    count = EagerCount()
    with _LaunchCounter(count):
        step()
    return count


def eval_step(model: torch.nn.Module, inputs: torch.Tensor) -> Callable[[], object]:
    def step():
        with torch.no_grad():
            return model(inputs)

    return step


def train_step(model: torch.nn.Module, inputs: torch.Tensor) -> Callable[[], None]:
    def step():
        for param in model.parameters():
            param.grad = None  # every step starts from no gradient, as after zero_grad(set_to_none=True)
        outputs_mean(model(inputs)).backward()

    return step


def count_model_eager(model: torch.nn.Module, inputs: torch.Tensor, mode: str, warmup: int = 1) -> EagerCount:
    """Eager count of one ``'eval'`` forward or one ``'train'`` step, after ``warmup`` uncounted ones.

    The warm-up lets lazily built state (buffers made on the first call, cached position tables) settle, so that
    the count is the steady one a training run pays at every iteration.
    """
    if mode not in ('eval', 'train'):
        raise ValueError(f"count_model_eager: mode must be 'eval' or 'train', got {mode!r}")
    model.train(mode == 'train')
    step = train_step(model, inputs) if mode == 'train' else eval_step(model, inputs)
    for _ in range(warmup):
        step()
    return count_eager(step)


@dataclass
class CompiledCount:
    """Kernels inductor generated for a step, the graph breaks Dynamo took and the graphs it compiled."""
    kernels: int
    graph_breaks: int
    graphs: int
    break_reasons: Sequence[str] = ()


def count_compiled(model: torch.nn.Module, inputs: torch.Tensor, mode: str, backend: str = 'inductor') -> CompiledCount:
    """Compile ``model`` afresh and count what one ``'eval'`` forward or ``'train'`` step generated.

    The compiled code is taken from inductor's caches where they hold it; the counts are restored with it, so a
    cached run counts what a fresh compile would.
    """
    if mode not in ('eval', 'train'):
        raise ValueError(f"count_compiled: mode must be 'eval' or 'train', got {mode!r}")
    from torch._dynamo.utils import counters
    from torch._inductor import metrics

    torch._dynamo.reset()
    metrics.reset()
    counters.clear()
    compiled = torch.compile(model, backend=backend)
    model.train(mode == 'train')
    step = train_step(compiled, inputs) if mode == 'train' else eval_step(compiled, inputs)
    step()
    breaks = counters['graph_break']
    result = CompiledCount(kernels=metrics.generated_kernel_count,
                           graph_breaks=sum(breaks.values()),
                           graphs=counters['stats']['unique_graphs'],
                           break_reasons=tuple(breaks))
    torch._dynamo.reset()
    return result
