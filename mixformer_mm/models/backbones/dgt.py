"""DGT: Dynamic Group Transformer.

Liu, Wu, Liu and Guo, "Dynamic Group Transformer: A General Vision Transformer Backbone with Dynamic Group
Attention", IJCAI 2022 (arXiv 2203.03937). No code was released and only the paper's abstract and the start of its
introduction could be read. What is known: a hierarchical backbone with a convolutional stem, conditional position
embeddings (CPE), Dynamic Group Attention and an inverted-residual feed-forward network (IRFFN). Everything else
(layouts, widths, depths, groups, top-k, norms) is our reconstruction; the
design decisions are listed in ``configs/dgt/README.md``. The variants are ours, not the paper's.

Reading order: stem -> block (CPE, DG-Attention, IRFFN) -> stage (downsampling + blocks) -> network.
DG-Attention itself lives in ``mixformer_mm/models/layers/dynamic_group_attention.py``.
"""
from typing import Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule, ModuleList
from torch import nn

from mixformer_mm.models.arguments import check_one_of
from mixformer_mm.models.layers import map_to_tokens, run_blocks_on_tokens, to_channels_last, tokens_to_map
from mixformer_mm.models.layers.conv_layers import ConvPositionEncoding, conv_norm_act, overlapping_stem_layers
from mixformer_mm.models.layers.dynamic_group_attention import IMPLEMENTATIONS, DGAttention
from mixformer_mm.models.layers.norm import LayerNorm2d
from mixformer_mm.registry import register_model

from .base_backbone import HierarchicalBackbone

LN_EPS = 1e-6


# --- stem ------------------------------------------------------------------------------------------------------
def build_stem(kind: str, in_channels: int, embed_dims: int, norm_cfg: dict) -> nn.Sequential:
    """Output stride 4, ``embed_dims`` channels, LayerNorm last.

    ``'conv'`` (default): Conv3x3 s2 (to C/2) + BN + GELU, Conv3x3 s2 (to C).
    ``'cmt'``: CMT's heavier stem, Conv3x3 s2 then two Conv3x3 s1 at C/2 (each + BN + GELU), then a 2x2 s2
    patch conv to C.
    """
    if kind == 'conv':
        layers = overlapping_stem_layers(in_channels, embed_dims, norm_cfg)
    elif kind == 'cmt':
        half = embed_dims // 2
        layers = (conv_norm_act(in_channels, half, 2, norm_cfg) + conv_norm_act(half, half, 1, norm_cfg)
                  + conv_norm_act(half, half, 1, norm_cfg) + [nn.Conv2d(half, embed_dims, 2, stride=2)])
    else:
        raise ValueError(f"DGT: stem must be 'conv' or 'cmt', got {kind!r}")
    return nn.Sequential(*layers, LayerNorm2d(embed_dims, eps=LN_EPS))


# --- block ----------------------------------------------------------------------------------------------------
class IRFFN(BaseModule):
    """Inverted residual FFN (CMT): 1x1 expansion + GELU, 3x3 depth-wise conv + GELU with its own residual,
    1x1 projection. With ``norm_cfg`` a BatchNorm follows each of the three, as in CMT; without, none (default),
    which suits small-batch detection. Takes and returns an NCHW map."""

    def __init__(self, embed_dims: int, mlp_ratio: float, norm_cfg: Optional[dict] = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        hidden = int(embed_dims * mlp_ratio)
        self.fc1 = nn.Linear(embed_dims, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, embed_dims)
        self.act = nn.GELU()

        def norm(channels):
            return build_norm_layer(norm_cfg, channels)[1] if norm_cfg else nn.Identity()

        self.norm1, self.norm2, self.norm3 = norm(hidden), norm(hidden), norm(embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(self.act(self.fc1(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2))
        x = x + self.norm2(self.act(self.dwconv(x)))
        return self.norm3(self.fc2(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


class DGTBlock(BaseModule):
    """x + CPE(x), then pre-norm DG-Attention and pre-norm IRFFN, each in a residual with drop path.

    The CPE (a 3x3 depth-wise conv with bias) starts every block and gives the position information that the
    attention, which has no relative-position bias, lacks.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float,
                 drop_path_rate: float = 0.,
                 attn_cfg: Optional[dict] = None,
                 ffn_norm_cfg: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.cpe = ConvPositionEncoding(embed_dims)
        self.norm1 = nn.LayerNorm(embed_dims, eps=LN_EPS)
        self.attn = DGAttention(embed_dims, num_heads, **(attn_cfg or {}))
        self.norm2 = nn.LayerNorm(embed_dims, eps=LN_EPS)
        self.ffn = IRFFN(embed_dims, mlp_ratio, norm_cfg=ffn_norm_cfg)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        x = self.cpe(x, hw)
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(map_to_tokens(self.ffn(tokens_to_map(self.norm2(x), hw))))


class DGTStage(BaseModule):
    """Optional downsampling (Conv3x3 s2 to the stage width + LayerNorm), then DGT blocks. NCHW in and out."""

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 depth: int,
                 num_heads: int,
                 mlp_ratio: float,
                 drop_path_rates: Sequence[float],
                 downsample: bool,
                 attn_cfg: dict,
                 ffn_norm_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, embed_dims, 3, stride=2, padding=1),
            LayerNorm2d(embed_dims, eps=LN_EPS)) if downsample else None
        self.blocks = ModuleList([
            DGTBlock(embed_dims, num_heads, mlp_ratio, drop_path_rates[i], attn_cfg, ffn_norm_cfg)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        # with_cp recomputation re-runs the k-means; it is deterministic (grid initialisation, stable sort)
        return run_blocks_on_tokens(self.blocks, x, self.with_cp)


# --- network --------------------------------------------------------------------------------------------------
@register_model
class DGT(HierarchicalBackbone):
    """Dynamic Group Transformer backbone for classification, detection and segmentation.

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'b'`` (our variants, configs/dgt/README.md) or a dict with
            ``embed_dims``, ``depths``, ``num_heads`` (four values each) and optionally ``mlp_ratios``,
            ``groups`` (G per stage) and ``topk`` (k per stage; ``None`` = all keys, i.e. global attention).
            Defaults: mlp ratio 4, G = (64, 16, 4, 1), k = (64, 64, 64, None).
        in_channels (int): Input channels.
        out_indices (Sequence[int]): Stages whose LayerNorm-ed NCHW outputs are returned (strides 4 to 32).
        frozen_stages (int): ``-1`` nothing, ``0`` the stem, ``k`` the stem, stages ``0..k-1`` and their output
            norms.
        norm_eval (bool): Keep BatchNorms (stem; IRFFN with ``ffn_norm='BN'``) in eval mode while training.
        norm_cfg (dict): BatchNorm of the stem and of the IRFFN when ``ffn_norm='BN'``: BN or SyncBN.
        drop_path_rate (float): Stochastic depth of the last block (linear from 0).
        groups (str): ``'fixed'``: G per stage as in the arch. ``'auto'``: G = clamp(round(N / auto_group_size),
            1, auto_max_groups) for a map of N tokens (global stages stay global).
        auto_group_size (int): Target queries per group of ``groups='auto'``.
        auto_max_groups (int): Upper bound of G for ``groups='auto'`` (k-means costs N G C).
        kmeans_iters (int): Lloyd iterations T before the final assignment and update.
        bucket_size (int): Queries per bucket of the bucketed attention (speed/memory only).
        attn_impl (str): ``'bucketed'`` or ``'masked_dense'`` (O(N^2); a test reference).
        share_groups (bool): One grouping per image from the full queries, shared by all heads.
        cosine (bool): Cluster l2-normalised queries.
        qkv_bias (bool): Bias of the QKV projection.
        stem (str): ``'conv'`` or ``'cmt'``.
        ffn_norm (str | None): ``None`` or ``'BN'`` (BatchNorms inside the IRFFN, built with ``norm_cfg``).
        with_cp (bool): Recompute block activations in backward to save memory.
        deploy (bool): Build the inference form of ``switch_to_deploy`` (BatchNorms folded), to load its
            state dict. Such a model cannot train.
        init_cfg (dict | list[dict], optional): e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
    """

    arch_zoo = {
        't': dict(embed_dims=[64, 128, 256, 512], depths=[2, 2, 16, 2], num_heads=[2, 4, 8, 16]),
        's': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 16, 2], num_heads=[4, 8, 16, 32]),
        'b': dict(embed_dims=[128, 256, 512, 1024], depths=[2, 2, 16, 2], num_heads=[4, 8, 16, 32]),
    }
    arch_zoo.update({'tiny': arch_zoo['t'], 'small': arch_zoo['s'], 'base': arch_zoo['b']})
    arch_keys = ('embed_dims', 'depths', 'num_heads')
    arch_defaults = dict(mlp_ratios=[4, 4, 4, 4], groups=[64, 16, 4, 1], topk=[64, 64, 64, None])
    # a classification checkpoint has only the last stage's output norm
    keys_new_by_design = ('norm0.', 'norm1.', 'norm2.')
    output_norm_key = 'norm{}'

    def __init__(self,
                 arch='t',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 drop_path_rate: float = 0.,
                 groups: str = 'fixed',
                 auto_group_size: int = 49,
                 auto_max_groups: int = 256,
                 kmeans_iters: int = 1,
                 bucket_size: int = 64,
                 attn_impl: str = 'bucketed',
                 share_groups: bool = False,
                 cosine: bool = False,
                 qkv_bias: bool = True,
                 stem: str = 'conv',
                 ffn_norm: Optional[str] = None,
                 with_cp: bool = False,
                 deploy: bool = False,
                 init_cfg=None):
        super().__init__(in_channels=in_channels, out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, with_cp=with_cp,
                         init_cfg=init_cfg)
        arch = {**self.arch_defaults, **self.parse_arch(arch)}
        self._check_args(arch, groups, ffn_norm, attn_impl)
        self.embed_dims = list(arch['embed_dims'])
        self.groups_mode = groups
        depths = list(arch['depths'])

        self.stem = build_stem(stem, in_channels, self.embed_dims[0], norm_cfg)
        ffn_norm_cfg = dict(norm_cfg) if ffn_norm == 'BN' else None
        rates = self.stochastic_depth_rates(drop_path_rate, depths)
        self.stages = ModuleList()
        for i in range(self.num_stages):
            attn_cfg = dict(groups=arch['groups'][i], topk=arch['topk'][i], kmeans_iters=kmeans_iters,
                            bucket_size=bucket_size, impl=attn_impl, share_groups=share_groups, cosine=cosine,
                            qkv_bias=qkv_bias, auto_group_size=auto_group_size if groups == 'auto' else None,
                            auto_max_groups=auto_max_groups)
            self.stages.append(
                DGTStage(
                    in_channels=self.embed_dims[max(i - 1, 0)],
                    embed_dims=self.embed_dims[i],
                    depth=depths[i],
                    num_heads=arch['num_heads'][i],
                    mlp_ratio=arch['mlp_ratios'][i],
                    drop_path_rates=rates[i],
                    downsample=i > 0,
                    attn_cfg=attn_cfg,
                    ffn_norm_cfg=ffn_norm_cfg,
                    with_cp=with_cp))
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.embed_dims[i], eps=LN_EPS))
        self._freeze()
        if deploy:
            self.switch_to_deploy()

    def _check_args(self, arch: dict, groups: str, ffn_norm, attn_impl: str) -> None:
        for key in ('embed_dims', 'depths', 'num_heads', 'mlp_ratios', 'groups', 'topk'):
            if len(arch[key]) != self.num_stages:
                raise ValueError(f'DGT: arch[{key!r}] needs {self.num_stages} values, got {arch[key]}')
        bad = [(c, h) for c, h in zip(arch['embed_dims'], arch['num_heads']) if c % h != 0]
        if bad:
            raise ValueError(f'DGT: embed_dims must be divisible by num_heads, got (dims, heads) {bad}')
        if arch['embed_dims'][0] % 2:
            raise ValueError(f'DGT: the first width must be even (the stem halves it), got {arch["embed_dims"][0]}')
        if groups not in ('fixed', 'auto'):
            raise ValueError(f"DGT: groups must be 'fixed' or 'auto', got {groups!r}")
        if ffn_norm not in (None, 'BN'):
            raise ValueError(f"DGT: ffn_norm must be None or 'BN', got {ffn_norm!r}")
        check_one_of('DGT', 'attn_impl', attn_impl, IMPLEMENTATIONS)

    @staticmethod
    def default_init_cfg():
        """Linear: truncated normal (std 0.02, bias 0); LayerNorm: ones and zeros; convs: Kaiming fan-out."""
        return HierarchicalBackbone.default_init_cfg() + [
            dict(type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu', bias=0.)
        ]

    def dg_attentions(self):
        """(stage, block, DGAttention) of every block, e.g. to enable ``record_grouping`` for visualisation."""
        return [(i, j, block.attn) for i, stage in enumerate(self.stages) for j, block in enumerate(stage.blocks)]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.check_input(x)
        # Channels-last maps throughout: tokens are their memory, and the IRFFN's permutes become free views.
        x = self.stem(to_channels_last(x))
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                norm = getattr(self, f'norm{i}')
                outs.append(tokens_to_map(norm(map_to_tokens(x)), x.shape[-2:]).contiguous())
        return tuple(outs)
