"""What the checkpoint converters share: reading the source, checking the result, writing it atomically."""
import os
import pickle
import sys
from collections import OrderedDict

import torch

from mixformer_mm.utils import compare_state_dicts, describe_mismatch, unwrap_state_dict


def load_source(path: str, trust: bool = False) -> 'OrderedDict':
    if not os.path.isfile(path):
        sys.exit(f'error: checkpoint {path} does not exist')
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=not trust)
    except pickle.UnpicklingError as err:
        sys.exit(f'error: {path} holds more than tensors ({str(err).splitlines()[0]}). If you trust the file, '
                 'rerun with --trust-source.')
    return unwrap_state_dict(checkpoint)


def check_against_variants(converted, model_cls, backbone_prefix: str, build_kwargs: dict, source: str) -> str:
    """Return the arch whose backbone the converted keys fit exactly, or exit naming the mismatched keys."""
    backbone = OrderedDict((k[len(backbone_prefix):], v) for k, v in converted.items()
                           if k.startswith(backbone_prefix))
    best = None
    seen = set()
    for arch, settings in model_cls.arch_zoo.items():
        if id(settings) in seen:  # aliases ('small' for 's') share their settings
            continue
        seen.add(id(settings))
        expected = model_cls(arch=arch, **build_kwargs).state_dict()
        missing, unexpected, mismatched = compare_state_dicts(expected, backbone)
        if not (missing or unexpected or mismatched):
            return arch
        size = len(missing) + len(unexpected) + len(mismatched)
        if best is None or size < best[0]:
            best = (size, arch, describe_mismatch(missing, unexpected, mismatched))
    sys.exit(f'error: {source} fits no {model_cls.__name__} variant; closest is {best[1]!r}: {best[2]}')


def save_checkpoint(state_dict, path: str, meta: dict) -> None:
    """Write ``{'state_dict', 'meta'}`` through a temporary file so a crash never leaves a half-written file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    torch.save({'state_dict': state_dict, 'meta': meta}, tmp)
    os.replace(tmp, path)
