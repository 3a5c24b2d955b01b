"""mixformer_mm: GroupMixFormer, MAFormer, GLMix and DGT backbones for mmpretrain, mmdet and mmseg.

Importing the package (``custom_imports=dict(imports=['mixformer_mm'])``) registers the backbones and the
reliability hooks, and makes mmengine checkpoints loadable under ``torch.load``'s ``weights_only`` default.
"""
from .utils import torch_load_compat  # noqa: F401  (must run before any checkpoint is read)
from .version import __version__
from . import engine, models  # noqa: F401,E402

__all__ = ['__version__']
