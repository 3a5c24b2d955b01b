"""Convolutional pieces the transformer backbones share: the overlapping 3x3 stem and the conditional position
encoding (CPE).

Both give a transformer the locality prior that patchify stems and pure attention lack; Xiao et al., "Early
Convolutions Help Transformers See Better" (NeurIPS 2021) for the stem, Chu et al., "Conditional Positional
Encodings for Vision Transformers" (ICLR 2023) for the CPE.
"""
from typing import List, Tuple

import torch
from mmcv.cnn import build_norm_layer
from torch import nn

from .layout import map_to_tokens, tokens_to_map


def conv_norm_act(in_channels: int, out_channels: int, stride: int, norm_cfg: dict) -> List[nn.Module]:
    """Conv3x3 (no bias: a norm follows) -> norm -> GELU."""
    return [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            build_norm_layer(norm_cfg, out_channels)[1], nn.GELU()]


def overlapping_stem_layers(in_channels: int, embed_dims: int, norm_cfg: dict) -> List[nn.Module]:
    """Output stride 4: Conv3x3 s2 to C/2 + norm + GELU, then Conv3x3 s2 to C (its norm is the caller's)."""
    half = embed_dims // 2
    return conv_norm_act(in_channels, half, 2, norm_cfg) + [nn.Conv2d(half, embed_dims, 3, stride=2, padding=1)]


def overlapping_stem_grid(img_hw: Tuple[int, int]) -> Tuple[int, int]:
    """Token grid after :func:`overlapping_stem_layers` (two ceil-halvings)."""
    return tuple(-(-s // 4) for s in img_hw)  # ceil(ceil(s / 2) / 2) == ceil(s / 4)


class ConvPositionEncoding(nn.Conv2d):
    """``x + DWConv3x3(x)`` on a token sequence: the position term is computed from the tokens' neighbourhood, so
    it works at any input size. A Conv2d subclass, so its parameters are ``<name>.weight`` / ``<name>.bias``."""

    def __init__(self, embed_dims: int, kernel_size: int = 3):
        super().__init__(embed_dims, embed_dims, kernel_size, padding=kernel_size // 2, groups=embed_dims)

    def forward(self, tokens: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        return tokens + map_to_tokens(super().forward(tokens_to_map(tokens, hw)))
