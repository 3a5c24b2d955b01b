"""What ``tools/test.py --out`` writes, through the codebases' own dumpers, never left half-written.

Each file appears under its final name only once it is complete (written next to it, then ``os.replace``d), so an
interrupted or killed test leaves the previous file or none, never a truncated one that would load as garbage.
"""
import os
import os.path as osp

from mmengine.evaluator import DumpResults
from mmengine.fileio import dump
from mmengine.logging import print_log
from mmengine.registry import METRICS

from mixformer_mm.utils.atomic import atomic_path

try:
    from mmdet.evaluation import DumpDetResults
except ImportError:  # mmdet is optional; only detection configs need its dumper
    DumpDetResults = None


def dump_atomically(obj, path: str) -> None:
    """``mmengine.dump`` (format from the extension: .pkl, .json, .yaml) through a temporary file."""
    with atomic_path(path) as partial:
        dump(obj, partial, file_format=osp.splitext(path)[1][1:])


class _AtomicCompute:
    """Replaces ``DumpResults.compute_metrics``: the same pickle, written through :func:`dump_atomically`."""

    def compute_metrics(self, results: list) -> dict:
        dump_atomically(results, self.out_file_path)
        print_log(f'Results have been saved to {self.out_file_path}.', logger='current')
        return {}


@METRICS.register_module()
class AtomicDumpResults(_AtomicCompute, DumpResults):
    """mmengine's ``DumpResults`` (what mmpretrain's ``--out`` uses): every data sample as the model returned it."""


if DumpDetResults is not None:

    @METRICS.register_module()
    class AtomicDumpDetResults(_AtomicCompute, DumpDetResults):
        """mmdet's ``DumpDetResults``: instance masks RLE-encoded, ground truth dropped before they are kept."""


def staging_dir(out_dir: str) -> str:
    """Where a metric writes files that :func:`publish_staged` later moves into ``out_dir``.

    The name is derived from ``out_dir`` alone so that every rank of a distributed test writes to the same place.
    """
    return osp.join(out_dir, '.incomplete')


def publish_staged(out_dir: str) -> int:
    """Move every file from :func:`staging_dir` into ``out_dir`` (one rename each) and return how many."""
    staged = staging_dir(out_dir)
    names = sorted(os.listdir(staged)) if osp.isdir(staged) else []
    for name in names:
        os.replace(osp.join(staged, name), osp.join(out_dir, name))
    if osp.isdir(staged):
        os.rmdir(staged)
    return len(names)
