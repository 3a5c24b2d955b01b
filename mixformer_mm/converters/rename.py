"""Checkpoint conversion by ordered regular-expression renames, shared by the per-model converters."""
import re
from collections import OrderedDict
from typing import Dict, NamedTuple, Sequence


class RenameRule(NamedTuple):
    pattern: str  # a regular expression that must match the whole source key
    replacement: str  # ``re`` replacement, ``None``-free; the empty string drops the key


def rename_keys(state_dict: Dict, rules: Sequence[RenameRule], source: str = 'checkpoint') -> 'OrderedDict':
    """Rename every key by the first rule whose pattern matches it fully.

    A key no rule matches is an error naming it: silently dropping weights would leave parts of the model at
    their random initialisation.
    """
    compiled = [(re.compile(rule.pattern), rule.replacement) for rule in rules]
    converted, unknown = OrderedDict(), []
    for key, value in state_dict.items():
        for pattern, replacement in compiled:
            if pattern.fullmatch(key):
                new_key = pattern.sub(replacement, key)
                if new_key:
                    converted[new_key] = value
                break
        else:
            unknown.append(key)
    if unknown:
        shown = ', '.join(unknown[:12]) + (f' ... and {len(unknown) - 12} more' if len(unknown) > 12 else '')
        raise KeyError(f'{source}: {len(unknown)} keys have no known counterpart: {shown}')
    return converted
