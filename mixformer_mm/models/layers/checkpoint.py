"""Activation checkpointing (``with_cp``) that is safe for blocks containing BatchNorm."""
from contextlib import contextmanager, nullcontext

import torch
import torch.utils.checkpoint as torch_checkpoint
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@contextmanager
def _running_stats_frozen(module: nn.Module):
    # Recomputing a block in backward runs its BatchNorms a second time; without this their running statistics
    # would be updated twice per step and drift from a run without checkpointing. A momentum of 0 keeps the
    # batch statistics (so the recomputed activations are identical) but leaves the running ones untouched.
    saved = []
    for m in module.modules():
        if isinstance(m, _BatchNorm) and m.training and m.track_running_stats:
            saved.append((m, m.momentum, m.num_batches_tracked.clone()))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


def checkpointed(module: nn.Module, *args, enabled: bool = True):
    """Call ``module(*args)``; with ``enabled`` and autograd on, recompute its activations in backward."""
    if not (enabled and torch.is_grad_enabled()):
        return module(*args)
    return torch_checkpoint.checkpoint(
        module, *args, use_reentrant=False,
        context_fn=lambda: (nullcontext(), _running_stats_frozen(module)))
