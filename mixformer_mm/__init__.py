"""mixformer_mm: GroupMixFormer, MAFormer, GLMix and DGT backbones for mmpretrain, mmdet and mmseg.

Importing the package (``custom_imports=dict(imports=['mixformer_mm'])``) registers the backbones and the
reliability hooks, and makes mmengine checkpoints loadable under ``torch.load``'s ``weights_only`` default.
"""
# The torch.load allow-list is installed before anything that may read a checkpoint is imported.
# isort: off
from .utils import torch_load_compat  # noqa: F401
from .version import __version__
from . import engine, models  # noqa: F401,E402
# isort: on

__all__ = ['__version__']
