"""GroupMixFormer: a vision transformer with Group-Mix Attention.

Ge et al., "Advancing Vision Transformers with Group-Mix Attention", arXiv 2311.15157; official code
AILab-CVC/GroupMixFormer. This implementation follows the official code (``configs/groupmixformer/README.md``), quirks
included, so that converted official checkpoints give the official logits. Where we depart (any input size),
the README of ``configs/groupmixformer`` says so.

Reading order, as in the paper: Group-Mix Attention (GMA) -> GMA block -> stage -> network.
"""
from collections import OrderedDict
from typing import Sequence, Tuple

import torch
from mmcv.cnn import DepthwiseSeparableConvModule, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule, ModuleList
from torch import nn

from mixformer_mm.models.layers import map_to_tokens, run_blocks_on_tokens, to_channels_last, tokens_to_map
from mixformer_mm.models.layers.attention import split_heads
from mixformer_mm.models.layers.bn_fold import bn_affine, fold_affine_into_rows
from mixformer_mm.models.layers.conv_layers import ConvPositionEncoding
from mixformer_mm.models.layers.ffn import token_ffn
from mixformer_mm.registry import register_model

from .base_backbone import HierarchicalBackbone

HSWISH = dict(type='HSwish')
NUM_SEGMENTS = 5  # four pre-attention segments and one non-attention segment
NUM_HEADS = 8
# The official position-encoding convolution gives heads 0-1, 2-4 and 5-7 kernels 3, 5 and 7 (hard-wired to 8 heads).
REL_POS_KERNEL_HEADS = ((3, 2), (5, 3), (7, 3))
BRANCH_KERNELS = (3, 5, 7)


def _stem_conv(in_channels, out_channels, norm_cfg):
    # The official stem convs keep their bias although a BatchNorm follows (checkpoints carry it).
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=True),
            bn=build_norm_layer(norm_cfg, out_channels)[1],
            act=nn.Hardswish()))


def _separable_conv(in_channels, out_channels, kernel_size, stride=1, norm_cfg=None, act_cfg=None):
    """Depthwise k x k then pointwise 1 x 1, both without bias, then the optional norm and activation."""
    return DepthwiseSeparableConvModule(
        in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False,
        norm_cfg=norm_cfg, act_cfg=act_cfg, dw_norm_cfg=None, dw_act_cfg=None)


class GroupMixAttention(BaseModule):
    """Group-Mix Attention.

    Q, K and V are split channel-wise into five segments. Four go through aggregators shared by Q, K and V
    (identity, and separable convs of kernel 3, 5, 7), giving attention over tokens and over group proxies; each
    pair of heads sees one aggregator. Attention is CoaT's factorised form, ``Q (softmax_N(K)^T V)``, linear in
    the number of tokens, plus a convolutional relative-position term ``Q * DWConv(V)``. The fifth segments of
    Q, K and V feed a non-attention branch. Both are mixed by the token-ensemble projection.
    """

    def __init__(self, embed_dims: int, qkv_bias: bool = True, norm_cfg: dict = dict(type='BN'), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.seg_dims = embed_dims // NUM_SEGMENTS
        self.attn_dims = self.seg_dims * (NUM_SEGMENTS - 1)
        self.head_dims = self.attn_dims // NUM_HEADS
        # Official quirk, kept for parity: the scale uses C/8 rather than the real head width C/10.
        self.scale = (embed_dims // NUM_HEADS)**-0.5

        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)

        # Pre-attention aggregators, applied to Q, K and V with the same weights.
        self.token_branch = nn.Sequential(
            OrderedDict(bn=build_norm_layer(norm_cfg, self.seg_dims)[1], act=nn.Hardswish()))
        self.group_branches = ModuleList([
            _separable_conv(self.seg_dims, self.seg_dims, k, norm_cfg=norm_cfg, act_cfg=HSWISH)
            for k in BRANCH_KERNELS
        ])

        # Non-attention aggregator over the concatenated fifth segments of Q, K and V.
        self.non_attn_conv = _separable_conv(3 * self.seg_dims, self.seg_dims, 3)
        self.non_attn_norm = nn.LayerNorm(self.seg_dims)  # eps 1e-5 here, unlike the blocks' 1e-6
        self.act = nn.Hardswish()

        self.rel_pos_channels = [heads * self.head_dims for _, heads in REL_POS_KERNEL_HEADS]
        self.rel_pos_convs = ModuleList([
            nn.Conv2d(c, c, k, padding=k // 2, groups=c)
            for (k, _), c in zip(REL_POS_KERNEL_HEADS, self.rel_pos_channels)
        ])

        self.proj = nn.Linear(embed_dims, embed_dims)  # token ensemble layer

    def fold_batch_norms(self) -> None:
        """For ``switch_to_deploy``: the token aggregator's BatchNorm acts on segment 0 of Q, K and V alike, which
        are rows of the QKV projection, so it folds into those rows."""
        if not isinstance(self.token_branch.bn, nn.modules.batchnorm._BatchNorm):
            return
        scale, shift = bn_affine(self.token_branch.bn)
        segment_rows = torch.arange(self.seg_dims, device=scale.device)
        rows = torch.cat([part * self.embed_dims + segment_rows for part in range(3)])  # Q, K, V
        fold_affine_into_rows(self.qkv, scale.repeat(3), shift.repeat(3), rows)
        self.token_branch.bn = nn.Identity()

    def _aggregate(self, qkv: torch.Tensor, batch: int, hw: Tuple[int, int]):
        height, width = hw
        num_tokens = height * width
        # One split rather than selects: the backward of a select zero-fills a gradient the size of the whole QKV
        # projection for each part and sums them; that of split concatenates the parts once.
        pre_attn_qkv, non_attn_qkv = qkv.view(batch, num_tokens, 3, NUM_SEGMENTS, self.seg_dims).split(
            [NUM_SEGMENTS - 1, 1], dim=3)
        # The four pre-attention segments of Q, K and V in one copy, segment-major, with Q, K and V stacked on the
        # batch axis so that each BatchNorm sees them as one batch, as in the official code (training statistics
        # depend on it). Each segment is then a compact channels-last (3B, C/5, H, W) map.
        segments = pre_attn_qkv.permute(3, 2, 0, 1, 4).reshape(NUM_SEGMENTS - 1, 3 * batch, num_tokens, self.seg_dims)
        maps = [tokens_to_map(segment, hw) for segment in segments.unbind(0)]

        pre_attn = [self.token_branch(maps[0])]
        pre_attn += [branch(segment_map) for branch, segment_map in zip(self.group_branches, maps[1:])]
        pre_attn = torch.cat(pre_attn, dim=1)

        # the fifth segments of Q, K and V side by side on the channel axis
        non_attn = non_attn_qkv.reshape(batch, num_tokens, 3 * self.seg_dims)
        non_attn = self.non_attn_conv(tokens_to_map(non_attn, hw))
        non_attn = self.act(self.non_attn_norm(map_to_tokens(non_attn)))
        return pre_attn.view(3, batch, self.attn_dims, height, width).unbind(0), non_attn

    @staticmethod
    def _to_heads(feature_map: torch.Tensor) -> torch.Tensor:
        return split_heads(map_to_tokens(feature_map), NUM_HEADS)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        batch, num_tokens, _ = x.shape
        (q_map, k_map, v_map), non_attn = self._aggregate(self.qkv(x), batch, hw)
        q, k, v = self._to_heads(q_map), self._to_heads(k_map), self._to_heads(v_map)

        context = k.softmax(dim=-2).transpose(-1, -2) @ v  # (B, heads, d, d): softmax over tokens, per channel
        factorised = q @ context
        rel_pos = torch.cat(
            [conv(part) for conv, part in zip(self.rel_pos_convs, v_map.split(self.rel_pos_channels, dim=1))],
            dim=1)
        out = self.scale * factorised + q * self._to_heads(rel_pos)

        # The heads back in token order and the non-attention segment (two head widths) after them, in one copy:
        # (B, N, 10, C/10) is the (B, N, C) input of the token ensemble layer.
        mixed = torch.cat([out.transpose(1, 2), non_attn.unflatten(-1, (-1, self.head_dims))], dim=2)
        return self.proj(mixed.flatten(2))


class GroupMixBlock(BaseModule):
    """Convolutional position encoding, then pre-norm GMA and pre-norm GELU MLP, each with a residual."""

    def __init__(self,
                 embed_dims: int,
                 mlp_ratio: float,
                 drop_path_rate: float = 0.,
                 qkv_bias: bool = True,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.cpe = ConvPositionEncoding(embed_dims)
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = GroupMixAttention(embed_dims, qkv_bias=qkv_bias, norm_cfg=norm_cfg)
        # Both residual branches use the block's rate, each drawing its own mask.
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.ffn = token_ffn(embed_dims, mlp_ratio, drop_path_rate)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        x = self.cpe(x, hw)
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return self.ffn(self.norm2(x), identity=x)


class GroupMixStage(BaseModule):
    """A separable-conv embedding (stride 1 for the first stage, 2 after) followed by GMA blocks."""

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 depth: int,
                 mlp_ratio: float,
                 stride: int,
                 drop_path_rates: Sequence[float],
                 qkv_bias: bool = True,
                 norm_cfg: dict = dict(type='BN'),
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.embed = _separable_conv(in_channels, embed_dims, 3, stride=stride, norm_cfg=norm_cfg, act_cfg=HSWISH)
        self.blocks = ModuleList([
            GroupMixBlock(embed_dims, mlp_ratio, drop_path_rates[i], qkv_bias=qkv_bias, norm_cfg=norm_cfg)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_blocks_on_tokens(self.blocks, self.embed(x), self.with_cp)


@register_model
class GroupMixFormer(HierarchicalBackbone):
    """GroupMixFormer backbone for classification, detection and segmentation.

    Args:
        arch (str | dict): ``'m'``, ``'t'``, ``'s'``, ``'b'``, ``'l'`` or a dict with ``embed_dims``, ``depths``
            and ``mlp_ratios`` (four values each). Widths must be divisible by 10; there are always 8 heads.
            ``'l'`` uses the official config file, which does not reproduce the paper's L size (README).
        in_channels (int): Input channels. Defaults to 3.
        out_indices (Sequence[int]): Stages whose NCHW outputs are returned (strides 4, 8, 16, 32).
        frozen_stages (int): ``-1`` nothing, ``0`` the stem, ``k`` the stem and the first ``k`` stages.
        norm_eval (bool): Keep every BatchNorm in eval mode while training (frozen statistics).
        norm_cfg (dict): Norm of the convolutional parts (stem, embeddings, aggregators): BN or SyncBN.
        drop_path_rate (float): Stochastic depth rate of the last block (linear from 0).
        qkv_bias (bool): Bias of the QKV projection (True in all official models).
        final_norm (bool): Apply the classifier's BatchNorm to the last stage's output, as the official
            ImageNet model does before pooling. Off for dense tasks (the official features are un-normalised).
        with_cp (bool): Recompute block activations in backward to save memory.
        deploy (bool): Build the inference form of ``switch_to_deploy`` (BatchNorms folded), to load its
            state dict. Such a model cannot train.
        init_cfg (dict | list[dict], optional): e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
    """

    arch_zoo = {
        'm': dict(embed_dims=[40, 80, 160, 160], depths=[3, 3, 12, 4], mlp_ratios=[4, 4, 4, 4]),
        't': dict(embed_dims=[80, 160, 200, 240], depths=[4, 4, 12, 4], mlp_ratios=[4, 4, 4, 4]),
        's': dict(embed_dims=[80, 160, 320, 320], depths=[2, 4, 12, 4], mlp_ratios=[4, 4, 4, 4]),
        'b': dict(embed_dims=[200, 240, 320, 480], depths=[8, 8, 12, 8], mlp_ratios=[2, 2, 4, 4]),
        'l': dict(embed_dims=[240, 320, 360, 480], depths=[8, 10, 30, 10], mlp_ratios=[4, 4, 2, 2]),
    }
    arch_zoo.update({
        'mini': arch_zoo['m'], 'tiny': arch_zoo['t'], 'small': arch_zoo['s'], 'base': arch_zoo['b'],
        'large': arch_zoo['l']
    })
    arch_keys = ('embed_dims', 'depths', 'mlp_ratios')

    def __init__(self,
                 arch='s',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 drop_path_rate: float = 0.,
                 qkv_bias: bool = True,
                 final_norm: bool = False,
                 with_cp: bool = False,
                 deploy: bool = False,
                 init_cfg=None):
        super().__init__(in_channels=in_channels, out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, with_cp=with_cp,
                         init_cfg=init_cfg)
        arch = self.parse_arch(arch)
        self._check_arch(arch)
        self.embed_dims = list(arch['embed_dims'])
        depths = list(arch['depths'])

        stem_dims = (in_channels, self.embed_dims[0] // 2, self.embed_dims[0])
        self.stem = nn.Sequential(*[_stem_conv(cin, cout, norm_cfg) for cin, cout in zip(stem_dims, stem_dims[1:])])

        rates = self.stochastic_depth_rates(drop_path_rate, depths)
        self.stages = ModuleList()
        for i in range(self.num_stages):
            self.stages.append(
                GroupMixStage(
                    in_channels=self.embed_dims[max(i - 1, 0)],
                    embed_dims=self.embed_dims[i],
                    depth=depths[i],
                    mlp_ratio=arch['mlp_ratios'][i],
                    stride=1 if i == 0 else 2,
                    drop_path_rates=rates[i],
                    qkv_bias=qkv_bias,
                    norm_cfg=norm_cfg,
                    with_cp=with_cp))

        self.final_norm = build_norm_layer(norm_cfg, self.embed_dims[-1])[1] if final_norm else None
        self._freeze()
        if deploy:
            self.switch_to_deploy()

    def _check_arch(self, arch: dict) -> None:
        for key in self.arch_keys:
            if len(arch[key]) != self.num_stages:
                raise ValueError(f'GroupMixFormer: arch[{key!r}] needs {self.num_stages} values, got {arch[key]}')
        bad = [c for c in arch['embed_dims'] if c % (2 * NUM_SEGMENTS) != 0]
        if bad:
            raise ValueError(f'GroupMixFormer: embed_dims {bad} are not divisible by 10; GMA splits each width '
                             'into 5 segments and 4 of them into 8 heads')
        if arch.get('num_heads', NUM_HEADS) != NUM_HEADS:
            raise ValueError(f'GroupMixFormer: num_heads must be 8 (the position-encoding kernels are assigned '
                             f'to heads 0-1, 2-4 and 5-7), got {arch["num_heads"]}')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.check_input(x)
        # Channels-last throughout: the token sequences are those maps' memory (see layers/layout.py).
        x = self.stem(to_channels_last(x))
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                is_last = i == self.num_stages - 1
                out = self.final_norm(x) if is_last and self.final_norm is not None else x
                outs.append(out.contiguous())
        return tuple(outs)
