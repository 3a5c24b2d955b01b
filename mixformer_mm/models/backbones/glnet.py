"""GLNet: a vision backbone built from GLMix blocks.

Zhu et al., "Revisiting the Integration of Convolution and Attention for Vision Backbone", NeurIPS 2024
(arXiv 2411.14429); official code rayleizhu/GLMix. This implementation follows the official code
(``configs/glnet/README.md``), quirks included, so that converted official checkpoints give the official logits.
Where we depart (multi-scale outputs with extra norms for dense tasks), ``configs/glnet/README.md`` says so.

Reading order, as in the paper: the GLMix block keeps a feature map twice, as a fine grid processed by
convolutions and as a small set of semantic slots processed by attention; pixels are softly clustered into the
slots and the mixed slots are dispatched back -> the plain global-attention blocks of the late stages -> stage ->
network.
"""
import math
from collections import OrderedDict
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath, LayerScale
from mmengine.model import BaseModule, ModuleDict, ModuleList
from torch import nn

from mixformer_mm.models.arguments import check_one_of
from mixformer_mm.models.layers import checkpointed, map_to_tokens, to_channels_last, tokens_to_map
from mixformer_mm.models.layers.attention import MultiheadSelfAttention
from mixformer_mm.models.layers.ffn import token_ffn
from mixformer_mm.models.layers.norm import LayerNorm2d
from mixformer_mm.registry import register_model

from .base_backbone import HierarchicalBackbone

BLOCK_NORM_EPS = 1e-6
CPE_KERNEL = 3  # the conditional position encoding and the FFN's depthwise conv are 3x3 in every variant
MIXING_MODES = ('glmix', 'glmix_mhsa', 'mhsa', 'mhsa_tokens')
SLOT_INITS = ('pool', 'param')


class TorchMHAInitSelfAttention(MultiheadSelfAttention):
    """The shared SDPA self-attention, initialised like the ``nn.MultiheadAttention`` of the official code (whose
    maths it has); ``embed_dims // head_dims`` heads."""

    def __init__(self, embed_dims: int, head_dims: int = 32, init_cfg=None):
        super().__init__(embed_dims, embed_dims // head_dims, init_cfg=init_cfg)

    def init_weights(self) -> None:
        super().init_weights()
        # The fused input projection of nn.MultiheadAttention is not a Linear, so the official model-wide
        # truncated-normal init skips it and it keeps the MHA's own xavier-uniform weights and zero bias.
        nn.init.xavier_uniform_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)


class ResidualDepthwiseConv(nn.Conv2d):
    """``x + DWConv3x3(x)``: the depthwise conv inside the FFN of the advanced variants."""

    def __init__(self, channels: int, kernel_size: int = CPE_KERNEL):
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


class ConvFFN(BaseModule):
    """Pointwise expansion, optional residual depthwise 3x3, GELU, pointwise projection (NCHW)."""

    def __init__(self, embed_dims: int, hidden_dims: int, residual_dwconv: bool, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.fc1 = nn.Conv2d(embed_dims, hidden_dims, 1)
        self.dwconv = ResidualDepthwiseConv(hidden_dims) if residual_dwconv else nn.Identity()
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_dims, embed_dims, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


def _depthwise_conv(channels: int, kernel_size: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)


def _layer_scale(embed_dims: int, init_value: float, data_format: str) -> nn.Module:
    return LayerScale(embed_dims, data_format=data_format, scale=init_value) if init_value > 0 else nn.Identity()


class GLMixBlock(BaseModule):
    """GLMix block: a local conv branch on the grid plus global attention on 64 semantic slots, summed.

    1. Slot centres come from the raw block input (before the position encoding and the norm): an 8x8 adaptive
       average pool, one slot per bin (``'pool'``), or learned per block and shared by all images (``'param'``).
    2. Similarity logits ``s * cos(slot, pixel)`` against the normalised pixels, with a learnable scalar ``s``
       (temperature ``1/s``) and no projection on either side.
    3. Clustering (softmax over pixels) makes each slot a convex combination of the normalised pixels; the slots
       are mixed by multi-head self-attention (no residual, norm or FFN around it); dispatching (softmax of the
       same logits over slots) sends them back to every pixel.
    4. The dispatched map plus the local branch (1x1 -> depthwise 5x5 -> 1x1 on the normalised map) is the
       token mixer of a pre-norm block with a conv FFN.
    """

    def __init__(self,
                 embed_dims: int,
                 mlp_ratio: float,
                 num_slots: int = 64,
                 slot_init: str = 'pool',
                 local_kernel: int = 5,
                 head_dims: int = 32,
                 use_cpe: bool = False,
                 ffn_dwconv: bool = False,
                 layer_scale: float = 0.,
                 drop_path_rate: float = 0.,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_slots = num_slots
        self.slot_grid = math.isqrt(num_slots)
        self.slot_scale = nn.Parameter(torch.tensor(embed_dims**-0.5))
        if slot_init == 'param':
            self.init_slots = nn.Parameter(torch.empty(1, num_slots, embed_dims).normal_(std=0.02))
        else:
            self.init_slots = None
        self.cpe = _depthwise_conv(embed_dims, CPE_KERNEL) if use_cpe else None
        self.norm1 = LayerNorm2d(embed_dims, eps=BLOCK_NORM_EPS)
        self.slot_attn = TorchMHAInitSelfAttention(embed_dims, head_dims)
        # No norm or activation between the three convs (the official "pseudo qkv / attention / output" convs).
        self.local_branch = nn.Sequential(
            OrderedDict(
                pw_in=nn.Conv2d(embed_dims, embed_dims, 1),
                dw=_depthwise_conv(embed_dims, local_kernel),
                pw_out=nn.Conv2d(embed_dims, embed_dims, 1)))
        self.ls1 = _layer_scale(embed_dims, layer_scale, 'channels_first')
        self.norm2 = LayerNorm2d(embed_dims, eps=BLOCK_NORM_EPS)
        self.ffn = ConvFFN(embed_dims, int(mlp_ratio * embed_dims), ffn_dwconv)
        self.ls2 = _layer_scale(embed_dims, layer_scale, 'channels_first')
        # One module for both residual branches; each call draws its own mask (timm's DropPath as in the official).
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        # Forward-hook points (no parameters) that see the (B, S, N) clustering and (B, N, S) dispatch weights.
        self.cluster_probe = nn.Identity()
        self.dispatch_probe = nn.Identity()

    def initial_slots(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, C) slot centres. The pool bins of PyTorch's adaptive pooling overlap when a side is not a
        multiple of the grid (8) and repeat pixels when it is shorter, exactly as in the official model."""
        if self.init_slots is not None:
            return self.init_slots.expand(x.shape[0], -1, -1)
        return map_to_tokens(F.adaptive_avg_pool2d(x, self.slot_grid))

    def similarity_logits(self, slots: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """(B, S, N) scaled cosine similarities between slot centres (B, S, C) and pixels (B, N, C)."""
        scaled_pixels = self.slot_scale * F.normalize(pixels, dim=-1)
        return F.normalize(slots, dim=-1) @ scaled_pixels.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slots = self.initial_slots(x)  # from the raw input, before the CPE and norm1 (official)
        if self.cpe is not None:
            x = x + self.cpe(x)
        normed = self.norm1(x)
        pixels = map_to_tokens(normed)  # (B, N, C), row-major over (H, W); a view of the channels-last map

        logits = self.similarity_logits(slots, pixels)
        clustering = self.cluster_probe(logits.softmax(dim=-1))  # each slot: weights over the pixels
        slots = self.slot_attn(clustering @ pixels)
        dispatch = self.dispatch_probe(logits.transpose(1, 2).softmax(dim=-1))  # each pixel: weights over slots
        global_branch = tokens_to_map(dispatch @ slots, x.shape[2:])

        mixed = global_branch + self.local_branch(normed)
        x = x + self.drop_path(self.ls1(mixed))
        return x + self.drop_path(self.ls2(self.ffn(self.norm2(x))))


class MHSABlock(BaseModule):
    """Plain global-attention block on an NCHW map (advanced variants: odd blocks of stage 2, all of stage 3).

    Optional conv position encoding, then token-format pre-norm attention and an NCHW pre-norm conv FFN.
    """

    def __init__(self,
                 embed_dims: int,
                 mlp_ratio: float,
                 head_dims: int = 32,
                 use_cpe: bool = False,
                 ffn_dwconv: bool = False,
                 layer_scale: float = 0.,
                 drop_path_rate: float = 0.,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.cpe = _depthwise_conv(embed_dims, CPE_KERNEL) if use_cpe else None
        self.norm1 = nn.LayerNorm(embed_dims, eps=BLOCK_NORM_EPS)
        self.attn = TorchMHAInitSelfAttention(embed_dims, head_dims)
        self.ls1 = _layer_scale(embed_dims, layer_scale, 'channels_last')
        self.norm2 = LayerNorm2d(embed_dims, eps=BLOCK_NORM_EPS)
        self.ffn = ConvFFN(embed_dims, int(mlp_ratio * embed_dims), ffn_dwconv)
        self.ls2 = _layer_scale(embed_dims, layer_scale, 'channels_first')
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cpe is not None:
            x = x + self.cpe(x)
        hw = x.shape[2:]
        tokens = map_to_tokens(x)
        tokens = tokens + self.drop_path(self.ls1(self.attn(self.norm1(tokens))))
        x = tokens_to_map(tokens, hw)
        return x + self.drop_path(self.ls2(self.ffn(self.norm2(x))))


class MHSATokenBlock(BaseModule):
    """ViT block on (B, N, C) tokens with a Linear FFN (GLNet-STL's last stage)."""

    def __init__(self,
                 embed_dims: int,
                 mlp_ratio: float,
                 head_dims: int = 32,
                 layer_scale: float = 0.,
                 drop_path_rate: float = 0.,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.norm1 = nn.LayerNorm(embed_dims, eps=BLOCK_NORM_EPS)
        self.attn = TorchMHAInitSelfAttention(embed_dims, head_dims)
        self.ls1 = _layer_scale(embed_dims, layer_scale, 'channels_last')
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=BLOCK_NORM_EPS)
        self.ffn = token_ffn(embed_dims, mlp_ratio, drop_path_rate, layer_scale)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.drop_path(self.ls1(self.attn(self.norm1(tokens))))
        return self.ffn(self.norm2(tokens), identity=tokens)


class GLNetStage(BaseModule):
    """The downsampling layer into the stage (none for stage 0, whose input comes from the stem), then blocks.

    ``mixing`` chooses the blocks: ``'glmix'`` all GLMix; ``'glmix_mhsa'`` GLMix at even and plain attention at
    odd indices; ``'mhsa'`` all plain attention (NCHW, conv FFN); ``'mhsa_tokens'`` all ViT blocks, run on tokens
    flattened once for the stage.
    """

    def __init__(self,
                 downsample: Optional[nn.Module],
                 embed_dims: int,
                 depth: int,
                 mixing: str,
                 mlp_ratio: float,
                 drop_path_rates: Sequence[float],
                 head_dims: int = 32,
                 num_slots: int = 64,
                 slot_init: str = 'pool',
                 local_kernel: int = 5,
                 use_cpe: bool = False,
                 ffn_dwconv: bool = False,
                 layer_scale: float = 0.,
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.downsample = downsample
        self.mixing = mixing
        self.with_cp = with_cp
        blocks = []
        for i in range(depth):
            common = dict(embed_dims=embed_dims, mlp_ratio=mlp_ratio, head_dims=head_dims,
                          layer_scale=layer_scale, drop_path_rate=drop_path_rates[i])
            if mixing == 'mhsa_tokens':
                blocks.append(MHSATokenBlock(**common))
            elif mixing == 'mhsa' or (mixing == 'glmix_mhsa' and i % 2 == 1):
                blocks.append(MHSABlock(use_cpe=use_cpe, ffn_dwconv=ffn_dwconv, **common))
            else:
                blocks.append(
                    GLMixBlock(num_slots=num_slots, slot_init=slot_init, local_kernel=local_kernel,
                               use_cpe=use_cpe, ffn_dwconv=ffn_dwconv, **common))
        self.blocks = ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        hw = x.shape[2:]
        if self.mixing == 'mhsa_tokens':
            x = map_to_tokens(x)
        for block in self.blocks:
            x = checkpointed(block, x, enabled=self.with_cp)
        if self.mixing == 'mhsa_tokens':
            x = tokens_to_map(x, hw)
        return x


def _stem(style: str, in_channels: int, embed_dims: int, norm_cfg: dict) -> nn.Sequential:
    if style == 'non_overlap':  # patchify: 4x4 stride-4 conv, then BN
        return nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(in_channels, embed_dims, 4, stride=4),
                norm=build_norm_layer(norm_cfg, embed_dims)[1]))
    # two overlapping 3x3 stride-2 convs (the official convs keep their bias although BN follows)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(in_channels, embed_dims // 2, 3, stride=2, padding=1),
            norm1=build_norm_layer(norm_cfg, embed_dims // 2)[1],
            act=nn.GELU(),
            conv2=nn.Conv2d(embed_dims // 2, embed_dims, 3, stride=2, padding=1),
            norm2=build_norm_layer(norm_cfg, embed_dims)[1]))


def _downsample(style: str, in_channels: int, out_channels: int, norm_cfg: dict) -> nn.Sequential:
    if style == 'non_overlap':  # Swin-like: the norm comes before the 2x2 stride-2 projection
        return nn.Sequential(
            OrderedDict(
                norm=build_norm_layer(norm_cfg, in_channels)[1],
                conv=nn.Conv2d(in_channels, out_channels, 2, stride=2)))
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
            norm=build_norm_layer(norm_cfg, out_channels)[1]))


@register_model
class GLNet(HierarchicalBackbone):
    """GLNet backbone for classification, detection and segmentation.

    Args:
        arch (str | dict): ``'stl'``, ``'stl_paramslot'``, ``'4g'``, ``'9g'``, ``'16g'`` or a dict with
            ``embed_dims`` and ``depths`` (four values each), ``mlp_ratio``, ``downsample`` (``'non_overlap'``:
            Swin-like patchify stem and norm-then-conv transitions; ``'overlap'``: two-conv stem and
            conv-then-norm transitions) and ``mixing`` (four of ``'glmix'``, ``'glmix_mhsa'``, ``'mhsa'``,
            ``'mhsa_tokens'``). Optional keys: ``cpe`` and ``ffn_dwconv`` (bool, default False), ``layer_scale``
            (default 0: off), ``slot_init`` (``'pool'`` or ``'param'``), ``num_slots`` (64), ``local_kernel`` (5),
            ``head_dims`` (32).
        in_channels (int): Input channels. Defaults to 3.
        out_indices (Sequence[int]): Stages whose NCHW outputs are returned (strides 4, 8, 16, 32).
        frozen_stages (int): ``-1`` nothing, ``0`` the stem, ``k`` the stem and the first ``k`` stages (with
            their downsampling layers and extra norms).
        norm_eval (bool): Keep every BatchNorm in eval mode while training (frozen statistics).
        norm_cfg (dict): Norm of the stem, downsampling layers and final norm: BN (official) or SyncBN.
        drop_path_rate (float): Stochastic depth rate of the last block (linear from 0 over all blocks).
        layer_scale_init_value (float, optional): LayerScale init; ``None`` takes the variant's (1e-4 for 16G,
            off otherwise), 0 switches it off.
        final_norm (bool): Apply the classifier's BatchNorm to the last stage's output, as the official ImageNet
            model does before pooling. For classification.
        extra_norms (bool): Put a newly initialised LayerNorm (eps 1e-6) on each returned stage output, the
            multi-scale features for dense tasks. Cannot be combined with ``final_norm``.
        with_cp (bool): Recompute block activations in backward to save memory.
        deploy (bool): Build the inference form of ``switch_to_deploy`` (BatchNorms folded), to load its
            state dict. Such a model cannot train.
        init_cfg (dict | list[dict], optional): e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
    """

    arch_zoo = {
        'stl': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 6, 2], mlp_ratio=4, downsample='non_overlap',
                    mixing=['glmix', 'glmix', 'glmix', 'mhsa_tokens']),
        'stl_paramslot': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 6, 2], mlp_ratio=4,
                              downsample='non_overlap', mixing=['glmix', 'glmix', 'glmix', 'mhsa_tokens'],
                              slot_init='param'),
        '4g': dict(embed_dims=[64, 128, 256, 512], depths=[4, 4, 18, 4], mlp_ratio=3, downsample='overlap',
                   mixing=['glmix', 'glmix', 'glmix_mhsa', 'mhsa'], cpe=True, ffn_dwconv=True),
        '9g': dict(embed_dims=[96, 192, 384, 768], depths=[4, 4, 18, 4], mlp_ratio=3, downsample='overlap',
                   mixing=['glmix', 'glmix', 'glmix_mhsa', 'mhsa'], cpe=True, ffn_dwconv=True),
        '16g': dict(embed_dims=[128, 256, 512, 1024], depths=[4, 4, 18, 4], mlp_ratio=3, downsample='overlap',
                    mixing=['glmix', 'glmix', 'glmix_mhsa', 'mhsa'], cpe=True, ffn_dwconv=True, layer_scale=1e-4),
    }
    arch_zoo['stl-paramslot'] = arch_zoo['stl_paramslot']
    arch_keys = ('embed_dims', 'depths', 'mlp_ratio', 'downsample', 'mixing')
    arch_defaults = dict(cpe=False, ffn_dwconv=False, layer_scale=0., slot_init='pool', num_slots=64,
                         local_kernel=5, head_dims=32)
    keys_new_by_design = ('extra_norms.', )
    output_norm_key = 'extra_norms.{}'

    def __init__(self,
                 arch='4g',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: Optional[float] = None,
                 final_norm: bool = False,
                 extra_norms: bool = True,
                 with_cp: bool = False,
                 deploy: bool = False,
                 init_cfg=None):
        super().__init__(in_channels=in_channels, out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, with_cp=with_cp,
                         init_cfg=init_cfg)
        arch = dict(self.arch_defaults, **self.parse_arch(arch))
        if layer_scale_init_value is not None:
            arch['layer_scale'] = layer_scale_init_value
        self._check_arch(arch)
        if final_norm and extra_norms:
            raise ValueError('GLNet: final_norm (the classifier BatchNorm) and extra_norms (per-output LayerNorms '
                             'for dense tasks) exclude each other; set one of them to False')
        self.arch = arch
        self.embed_dims = list(arch['embed_dims'])
        depths = list(arch['depths'])

        self.stem = _stem(arch['downsample'], in_channels, self.embed_dims[0], norm_cfg)
        rates = self.stochastic_depth_rates(drop_path_rate, depths)
        self.stages = ModuleList()
        for i in range(self.num_stages):
            downsample = None if i == 0 else _downsample(arch['downsample'], self.embed_dims[i - 1],
                                                         self.embed_dims[i], norm_cfg)
            self.stages.append(
                GLNetStage(
                    downsample=downsample,
                    embed_dims=self.embed_dims[i],
                    depth=depths[i],
                    mixing=arch['mixing'][i],
                    mlp_ratio=arch['mlp_ratio'],
                    drop_path_rates=rates[i],
                    head_dims=arch['head_dims'],
                    num_slots=arch['num_slots'],
                    slot_init=arch['slot_init'],
                    local_kernel=arch['local_kernel'],
                    use_cpe=arch['cpe'],
                    ffn_dwconv=arch['ffn_dwconv'],
                    layer_scale=arch['layer_scale'],
                    with_cp=with_cp))

        self.final_norm = build_norm_layer(norm_cfg, self.embed_dims[-1])[1] if final_norm else None
        self.extra_norms = ModuleDict({
            str(i): LayerNorm2d(self.embed_dims[i], eps=BLOCK_NORM_EPS) for i in self.out_indices
        }) if extra_norms else None
        self._freeze()
        if deploy:
            self.switch_to_deploy()

    def _check_arch(self, arch: dict) -> None:
        for key in ('embed_dims', 'depths', 'mixing'):
            if len(arch[key]) != self.num_stages:
                raise ValueError(f'GLNet: arch[{key!r}] needs {self.num_stages} values, got {arch[key]}')
        unknown = [m for m in arch['mixing'] if m not in MIXING_MODES]
        if unknown:
            raise ValueError(f'GLNet: unknown mixing mode(s) {unknown}; valid are {list(MIXING_MODES)}')
        if arch['downsample'] not in ('non_overlap', 'overlap'):
            raise ValueError(f"GLNet: arch['downsample'] must be 'non_overlap' or 'overlap', got "
                             f"{arch['downsample']!r}")
        bad = [c for c in arch['embed_dims'] if c % arch['head_dims'] != 0]
        if bad:
            raise ValueError(f"GLNet: embed_dims {bad} are not divisible by head_dims={arch['head_dims']} "
                             '(the number of heads is width / head_dims)')
        check_one_of('GLNet', "arch['slot_init']", arch['slot_init'], SLOT_INITS)
        if arch['slot_init'] == 'pool' and math.isqrt(arch['num_slots'])**2 != arch['num_slots']:
            raise ValueError(f"GLNet: num_slots={arch['num_slots']} is not a perfect square; pooled slot "
                             'initialisation uses a square grid of bins')
        if arch['local_kernel'] < 1 or arch['local_kernel'] % 2 == 0:
            raise ValueError(f"GLNet: local_kernel must be a positive odd size, got {arch['local_kernel']}")

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.check_input(x)
        # Channels-last throughout: convolutions (depthwise ones above all) train faster on it, and the token
        # views of the attention parts are that memory (see layers/layout.py). Outputs are plain NCHW again.
        x = self.stem(to_channels_last(x))
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i not in self.out_indices:
                continue
            if self.extra_norms is not None:
                out = self.extra_norms[str(i)](x)
            elif self.final_norm is not None and i == self.num_stages - 1:
                out = self.final_norm(x)
            else:
                out = x
            outs.append(out.contiguous())
        return tuple(outs)
