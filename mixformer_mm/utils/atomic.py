"""Files that appear under their name only when complete: the one atomic-write helper of the package.

Checkpoints, ``--out`` dumps and converted weights are all written to a temporary file in the destination folder
(same file system, so the rename is atomic), flushed to disk, then renamed over the destination. A crash, a kill or
a full disk during the write leaves the previous file (or none), never a truncated one under the final name.
"""
import os
import os.path as osp
import tempfile
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path`` to write to; on leaving the block without an error it is fsynced and
    renamed over ``path``, on an error (KeyboardInterrupt included) it is removed."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, 'rb') as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
