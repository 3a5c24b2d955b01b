"""Folding inference-time BatchNorms into the layer that feeds them (``switch_to_deploy``).

In eval mode a BatchNorm is a per-channel affine map, ``y = s * x + t`` with ``s = gamma / sqrt(var + eps)`` and
``t = beta - s * mean``. When it directly follows a convolution or a linear layer, multiplying that layer's output
rows by ``s`` and adding ``t`` to its bias gives the same outputs with one kernel and one full-size write fewer.

Only pairs that the forward applies back to back are folded: adjacent children of an ``nn.Sequential`` and the
``conv -> norm`` of an mmcv ``ConvModule``. (mmcv's ``fuse_conv_bn`` pairs a BatchNorm with whichever Conv2d was
registered before it, which is wrong for modules whose registration order is not their forward order.)
"""
from typing import Optional, Tuple

import torch
from mmcv.cnn import ConvModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def bn_affine(bn: _BatchNorm) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(s, t)`` of the eval-mode map ``bn(x) = s * x + t``, per channel."""
    if bn.running_var is None:
        raise ValueError(f'{type(bn).__name__} keeps no running statistics (track_running_stats=False): its eval '
                         'output depends on the batch and cannot be folded')
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


@torch.no_grad()
def fold_affine_into_rows(layer: nn.Module, scale: torch.Tensor, shift: torch.Tensor,
                          rows: Optional[torch.Tensor] = None) -> None:
    """Make ``layer`` (Conv2d or Linear) return ``scale * out + shift`` on its output channels ``rows`` (all by
    default); a layer without bias gets one."""
    weight = layer.weight
    if layer.bias is None:
        layer.bias = nn.Parameter(weight.new_zeros(weight.shape[0]))
    rows = torch.arange(weight.shape[0], device=weight.device) if rows is None else rows
    view = (-1, ) + (1, ) * (weight.dim() - 1)
    weight[rows] = weight[rows] * scale.to(weight.dtype).view(view)
    layer.bias[rows] = layer.bias[rows] * scale.to(weight.dtype) + shift.to(weight.dtype)


def _foldable(layer: nn.Module) -> bool:
    return isinstance(layer, (nn.Conv2d, nn.Linear))


def fold_adjacent_batch_norms(module: nn.Module) -> int:
    """Fold every BatchNorm that directly follows a Conv2d/Linear in ``module`` into it and replace the norm with
    ``nn.Identity``; return how many were folded."""
    folded = 0
    for parent in module.modules():
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            for before, name in zip(names, names[1:]):
                layer, norm = parent._modules[before], parent._modules[name]
                if _foldable(layer) and isinstance(norm, _BatchNorm):
                    fold_affine_into_rows(layer, *bn_affine(norm))
                    parent._modules[name] = nn.Identity()
                    folded += 1
        elif isinstance(parent, ConvModule) and parent.with_norm and isinstance(parent.norm, _BatchNorm):
            order = list(parent.order)
            if order.index('norm') == order.index('conv') + 1:
                fold_affine_into_rows(parent.conv, *bn_affine(parent.norm))
                parent._modules[parent.norm_name] = nn.Identity()
                parent.efficient_conv_bn_eval_forward = None
                folded += 1
    return folded
