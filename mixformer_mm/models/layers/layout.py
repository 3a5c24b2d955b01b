"""Token <-> feature-map views without copies.

A token sequence ``(B, H*W, C)`` laid out row-major is, byte for byte, an NHWC image: viewed as ``(B, C, H, W)``
with channels-last strides it feeds convolutions directly, and a channels-last convolution output flattens back to
contiguous tokens. Moving between the two layouts with ``transpose(...).reshape(...)`` instead copies the whole
tensor each way, and hands NCHW tensors to depthwise convolutions, whose backward on CPU is several times slower
than in channels-last (the README's "Speed and memory" section has the measured effect).
"""
from typing import Iterable, Tuple

import torch
from torch import nn

from .checkpoint import checkpointed


def tokens_to_map(tokens: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """``(B, H*W, C)`` -> ``(B, C, H, W)``, a channels-last view of the same memory when ``tokens`` is contiguous."""
    batch, num_tokens, channels = tokens.shape
    height, width = hw
    if num_tokens != height * width:
        raise ValueError(f'tokens_to_map: {num_tokens} tokens do not form a {height}x{width} map')
    return tokens.reshape(batch, height, width, channels).permute(0, 3, 1, 2)


def map_to_tokens(feature_map: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, H*W, C)``; contiguous without a copy when the map is channels-last."""
    return feature_map.flatten(2).transpose(1, 2)


def to_channels_last(feature_map: torch.Tensor) -> torch.Tensor:
    return feature_map.contiguous(memory_format=torch.channels_last)


def run_blocks_on_tokens(blocks: Iterable[nn.Module], feature_map: torch.Tensor, with_cp: bool = False) -> torch.Tensor:
    """Apply token blocks ``block(tokens, hw)`` to a map: one flatten in, one channels-last view out."""
    hw = tuple(feature_map.shape[2:])
    tokens = map_to_tokens(feature_map).contiguous()
    for block in blocks:
        tokens = checkpointed(block, tokens, hw, enabled=with_cp)
    return tokens_to_map(tokens, hw)
