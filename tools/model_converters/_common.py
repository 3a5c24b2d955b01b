"""What the checkpoint converters share: reading the source, checking the result, writing it atomically."""
import os
import pickle
import sys
import urllib.error
import urllib.parse
from collections import OrderedDict

import torch

from mixformer_mm.utils import atomic_path, compare_state_dicts, describe_mismatch, unwrap_state_dict

URL_SCHEMES = ('http://', 'https://')


def fetch(url: str) -> str:
    """Download ``url`` once into torch.hub's checkpoint cache (``$TORCH_HOME/hub/checkpoints``, named by the URL's
    file name), where mmengine's CheckpointLoader and torch.hub keep http(s) checkpoints too; return the path.
    torch.hub writes to a temporary file and renames it, so an interrupted download leaves nothing behind."""
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        sys.exit(f'error: {url} names no file')
    cached = os.path.join(torch.hub.get_dir(), 'checkpoints', name)
    if not os.path.isfile(cached):
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, cached, progress=sys.stderr.isatty())
        except (urllib.error.URLError, OSError, ValueError) as err:
            sys.exit(f'error: cannot download {url}: {err}')
    return cached


def read_checkpoint(source: str, trust: bool = False):
    """The checkpoint object of a path or an http(s) URL, as saved; tensors only unless ``trust``."""
    path = fetch(source) if source.startswith(URL_SCHEMES) else source
    if not os.path.isfile(path):
        sys.exit(f'error: checkpoint {path} does not exist')
    try:
        return torch.load(path, map_location='cpu', weights_only=not trust)
    except pickle.UnpicklingError as err:
        sys.exit(f'error: {source} holds more than tensors ({str(err).splitlines()[0]}). If you trust the file, '
                 'rerun with --trust-source.')


def load_source(source: str, trust: bool = False) -> 'OrderedDict':
    """The state dict of a path or an http(s) URL (unwrapped from ``model``/``state_dict`` and DDP prefixes)."""
    return unwrap_state_dict(read_checkpoint(source, trust))


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
    """Write ``{'state_dict', 'meta'}`` atomically, so a crash never leaves a half-written file."""
    with atomic_path(path) as tmp:
        torch.save({'state_dict': state_dict, 'meta': meta}, tmp)
