"""The channels-first LayerNorm of GLNet (block norms, dense-task output norms) and DGT (stem, downsampling)."""
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS as MMENGINE_MODELS
from torch import nn

from mixformer_mm.registry import MODELS


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) map (timm's ``LayerNorm2d``).

    Not mmpretrain's ``LayerNorm2d``: that one copies its output back to contiguous NCHW, one more kernel and a
    full-size write, and it hands the following convolutions NCHW instead of channels-last. Here the permuted
    (N, H, W, C) view of a channels-last map is contiguous, so the norm works on the map's own memory and its
    output is channels-last again; the numbers are the same.

    A direct ``nn.LayerNorm`` subclass, so ``init_cfg`` rules for ``layer='LayerNorm'`` and weight-decay rules for
    norms treat it as one. Registered as ``'LN2d'`` (in the root registry and ours) so that a ``norm_cfg`` can name
    it; the backbones build it by class, because under the ``mmpretrain`` scope ``'LN2d'`` finds mmpretrain's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


MODELS.register_module('LN2d', module=LayerNorm2d)
MMENGINE_MODELS.register_module('LN2d', module=LayerNorm2d)
