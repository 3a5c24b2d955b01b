"""Let ``torch.load``'s ``weights_only=True`` default (torch >= 2.6) read mmengine's own checkpoints.

mmengine 0.10.x calls ``torch.load`` without ``weights_only``; its checkpoints carry, besides tensors, the
message hub's ``HistoryBuffer`` objects and numpy arrays and scalars, which the safe unpickler refuses, so
``--resume`` would fail. Instead of turning the safety off, the few types mmengine writes are allow-listed.
"""
import pickle
from types import FunctionType

import numpy as np
import torch


def _numpy_globals():
    core = getattr(np, '_core', None) or np.core  # numpy >= 2 moved np.core to np._core
    found = [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:  # numpy >= 1.25 pickles dtypes by their classes
        found += [cls for cls in vars(dtypes).values() if isinstance(cls, type) and issubclass(cls, np.dtype)]
    return found


def _history_buffer_method(owner, name):
    """Stands in for ``getattr`` while unpickling: HistoryBuffer pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. A general ``getattr`` would open the safe unpickler to arbitrary code, so
    only public functions of HistoryBuffer are handed out."""
    from mmengine.logging import HistoryBuffer
    method = getattr(HistoryBuffer, name, None) if owner is HistoryBuffer else None
    if not name.startswith('_') and isinstance(method, FunctionType):
        return method
    raise pickle.UnpicklingError(f'refusing getattr({owner!r}, {name!r}) while loading a checkpoint: only '
                                 'HistoryBuffer statistics methods are allowed')


def _mmengine_globals():
    from mmengine.logging import HistoryBuffer
    return [HistoryBuffer, (_history_buffer_method, 'builtins.getattr'),
            (_history_buffer_method, '__builtin__.getattr')]


def allow_mmengine_checkpoints() -> None:
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:  # torch < 2.4 has no weights_only default to satisfy
        return
    add_safe_globals(_numpy_globals() + _mmengine_globals())


allow_mmengine_checkpoints()
