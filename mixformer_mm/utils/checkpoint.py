"""Loading checkpoints into our modules with errors that name what does not fit."""
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn


def unwrap_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """Return the state_dict inside the usual containers (mmengine ``state_dict``, official ``model``)."""
    if not isinstance(checkpoint, dict):
        raise TypeError(f'expected a checkpoint dict, got {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            return checkpoint[key]
    return checkpoint


def compare_state_dicts(
        expected: Dict[str, torch.Tensor],
        given: Dict[str, torch.Tensor]) -> Tuple[List[str], List[str], List[str]]:
    """Return (missing, unexpected, shape-mismatched) key lists of ``given`` against ``expected``."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    mismatched = [
        f'{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}'
        for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    return missing, unexpected, mismatched


def _listing(title: str, names: List[str], limit: int = 12) -> str:
    shown = ', '.join(names[:limit])
    more = f' ... and {len(names) - limit} more' if len(names) > limit else ''
    return f'{title} ({len(names)}): {shown}{more}'


def describe_mismatch(missing: List[str], unexpected: List[str], mismatched: List[str]) -> str:
    parts = []
    if missing:
        parts.append(_listing('missing keys', missing))
    if mismatched:
        parts.append(_listing('shape mismatches', mismatched))
    if unexpected:
        parts.append(_listing('unexpected keys', unexpected))
    return '; '.join(parts)


def load_checked_state_dict(module: nn.Module,
                            state_dict: Dict[str, torch.Tensor],
                            source: str,
                            prefix: Optional[str] = None,
                            allowed_missing: Iterable[str] = (),
                            logger=None) -> None:
    """Load ``state_dict`` (optionally only its ``prefix.`` part) into ``module``.

    Every tensor of the module must be present with the right shape, except keys starting with one of
    ``allowed_missing`` (parts that are new by design). Keys the module does not have are reported and skipped.
    Raises ``KeyError`` naming the checkpoint and the offending keys otherwise, instead of silently leaving the
    module randomly initialised.
    """
    if prefix:
        if not prefix.endswith('.'):
            prefix += '.'
        selected = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not selected:
            first = ', '.join(list(state_dict)[:5])
            raise KeyError(f'no key of checkpoint {source} starts with prefix {prefix!r} '
                           f'(its first keys are: {first}); check init_cfg.prefix')
        state_dict = selected
    expected = module.state_dict()
    missing, unexpected, mismatched = compare_state_dicts(expected, state_dict)
    missing = [k for k in missing if not any(k.startswith(p) for p in allowed_missing)]
    if missing or mismatched:
        raise KeyError(f'checkpoint {source} does not fit {type(module).__name__}: '
                       + describe_mismatch(missing, [], mismatched)
                       + '. Is it a checkpoint of another model or variant (arch)? Official checkpoints must be '
                       'converted first with tools/model_converters/.')
    if unexpected and logger is not None:
        logger.warning(f'checkpoint {source}: ignored ' + _listing('unexpected keys', unexpected))
    module.load_state_dict({k: v for k, v in state_dict.items() if k in expected}, strict=False)
