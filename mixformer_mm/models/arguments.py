"""Checks of constructor arguments shared by the backbones and their layers, with errors that name the argument."""
import difflib
from typing import Any, Optional, Sequence


def check_one_of(owner: str, name: str, value: Any, choices: Sequence) -> None:
    """Raise ``ValueError('<owner>: <name> must be one of <choices>, got <value>')`` unless ``value`` is one."""
    if value not in choices:
        raise ValueError(f'{owner}: {name} must be one of {tuple(choices)}, got {value!r}')


def merge_options(owner: str, name: str, given: Optional[dict], defaults: dict) -> dict:
    """The option dict ``name`` (e.g. ``gld_cfg``): ``defaults`` updated with ``given``.

    A key ``defaults`` lacks is refused with a ``KeyError`` naming it (and the closest valid key), since a typo
    would otherwise silently build the default model.
    """
    if given is None:
        return dict(defaults)
    if not isinstance(given, dict):
        raise TypeError(f'{owner}: {name} must be a dict, got {type(given).__name__}')
    for key in given:
        if key not in defaults:
            close = difflib.get_close_matches(str(key), list(defaults), n=1)
            hint = f' (did you mean {close[0]!r}?)' if close else ''
            raise KeyError(f'{owner}: {name} has no option {key!r}{hint}; its options are {list(defaults)}')
    return {**defaults, **given}
