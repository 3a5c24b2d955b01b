"""Multi-head attention through ``F.scaled_dot_product_attention``, and the head split and merge around it.

SDPA picks a fused kernel that never materialises the L x L scores, which the global stages need at detection
sizes (about 4,200 tokens at stride 16 for 800x1333). The helpers keep the head split a view, so q, k and v reach
SDPA without a copy, and the layout is the usual one (head ``j`` owns channels ``[j*d, (j+1)*d)``, as in
``nn.MultiheadAttention`` and timm), so converted checkpoints keep their meaning.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(..., L, C) -> (..., heads, L, C / heads)."""
    *lead, length, channels = x.shape
    return x.reshape(*lead, length, num_heads, channels // num_heads).transpose(-3, -2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(..., heads, L, d) -> (..., L, heads * d)."""
    x = x.transpose(-3, -2)
    return x.reshape(*x.shape[:-2], -1)


def split_fused_qkv(qkv: torch.Tensor, num_heads: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(..., L, 3C) output of a fused ``[q | k | v]`` projection -> q, k, v as (..., heads, L, C / heads) views.

    Unbinding the q/k/v axis in place (rather than chunking the channels, or unbinding after moving that axis to
    the front) makes the backward stack the three gradients straight into the projection's (..., L, 3C) layout,
    in one kernel instead of a copy per gradient and a concatenation. The forward views are the same.
    """
    *lead, length, channels = qkv.shape
    parts = qkv.view(*lead, length, 3, num_heads, channels // (3 * num_heads)).unbind(-3)
    return tuple(part.transpose(-3, -2) for part in parts)


class MultiheadSelfAttention(BaseModule):
    """Global multi-head self-attention on (B, N, C) tokens: a fused ``[q | k | v]`` projection, SDPA (scale
    ``d**-0.5``), an output projection; parameters ``qkv`` and ``proj``."""

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query, key, value = split_fused_qkv(self.qkv(x), self.num_heads)
        return self.proj(merge_heads(F.scaled_dot_product_attention(query, key, value)))
