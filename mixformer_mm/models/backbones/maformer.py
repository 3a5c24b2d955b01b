"""MAFormer: a transformer with Multi-scale Attention Fusion.

Wang, Sun et al., "MAFormer: A Transformer Network with Multi-scale Attention Fusion for Visual Recognition",
arXiv 2209.01620 (Neurocomputing 595, 2024). No code of MAFormer is public and only the abstract and a third-party
restatement of the block equations could be read, so this is a from-scratch design. What is the paper's and what
is our design decision is listed in ``configs/maformer/README.md``; the short version, by part:

- paper: four stages, MAF blocks in stages 1-2 and global-attention blocks in stages 3-4; the MAF block is a local
  window-attention branch, a Global Learning with Down-sampling (GLD) branch (a learned FC over the token axis from
  L to N*L tokens plus a position term, N = 0.5) and a fusion in which local tokens attend to the global tokens;
- ours: the CSWin skeleton (conv stem and merges), square unshifted windows with a relative-position bias, the
  layer norms around GLD and fusion, the fusion residual, LePE in the global blocks, the S/B/L sizes and, above
  all, GLD at input sizes other than the pretraining one (a fixed reference grid, see ``GlobalDownsampling``).

Reading order, as in the paper: local window attention -> GLD -> fusion -> MAF block -> global block -> network.
"""
import math
import re
import warnings
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from mmengine.logging import MMLogger
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

from mixformer_mm.models.arguments import check_one_of, merge_options
from mixformer_mm.models.layers import checkpointed, map_to_tokens, to_channels_last, tokens_to_map
from mixformer_mm.models.layers.attention import merge_heads, split_fused_qkv, split_heads
from mixformer_mm.models.layers.conv_layers import ConvPositionEncoding, overlapping_stem_grid, overlapping_stem_layers
from mixformer_mm.models.layers.ffn import token_ffn
from mixformer_mm.registry import register_model
from mixformer_mm.utils.checkpoint import load_checked_state_dict, unwrap_state_dict
from mixformer_mm.utils.flops import UntracedFlopsMixin

from .base_backbone import HierarchicalBackbone

HW = Tuple[int, int]
GLD_RESIZE_MODES = ('bilinear', 'area')
GLD_POS_MODES = ('per_block', 'shared_interp', 'from_input', 'none')
GLD_INIT_MODES = ('trunc_normal', 'pool')
GLOBAL_POS_MODES = ('lepe', 'none')
STEM_MODES = ('cswin', 'conv')
FUSION_MODES = ('cross_attn', 'add', 'concat_linear')
# MAFormer's gld_cfg and fusion_cfg: every option and its default
GLD_DEFAULTS = dict(ratio=0.5, resize='bilinear', pos='per_block', init='trunc_normal')
FUSION_DEFAULTS = dict(mode='cross_attn', ffn=False)
# the flat keyword arguments those dicts replace (deprecated): name -> (dict argument, key)
DEPRECATED_FLAT_OPTIONS = {'gld_ratio': ('gld_cfg', 'ratio'), 'gld_resize': ('gld_cfg', 'resize'),
                           'gld_pos': ('gld_cfg', 'pos'), 'gld_init': ('gld_cfg', 'init'),
                           'fusion_mode': ('fusion_cfg', 'mode'), 'fusion_ffn': ('fusion_cfg', 'ffn')}


def _pair(size: Union[int, Sequence[int]]) -> HW:
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f'expected an int or an (H, W) pair, got {size}')
    return size


def resample_grid(x: torch.Tensor, size: HW, mode: str = 'bilinear') -> torch.Tensor:
    """Resize the last two axes of ``x`` to ``size``: bilinear (anti-aliased when shrinking) or area."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-2]
    x = x.reshape(-1, 1, *x.shape[-2:]) if x.dim() != 4 else x
    if mode == 'bilinear':
        shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        # the CPU anti-aliasing kernel has no bfloat16/half version: resample those in float32
        low_precision = shrinking and x.dtype in (torch.bfloat16, torch.float16)
        out = F.interpolate(x.float() if low_precision else x, size=size, mode='bilinear', align_corners=False,
                            antialias=shrinking).to(x.dtype)
    elif mode == 'area':
        out = F.adaptive_avg_pool2d(x, size)
    else:
        raise ValueError(f'unknown resize mode {mode!r}; use one of {GLD_RESIZE_MODES}')
    return out.reshape(*lead, *size)


def _antialiased_taps(in_size: int, out_size: int) -> int:
    """Filter taps summed over the outputs of one axis of PyTorch's anti-aliased bilinear resize (its window:
    centre +- max(scale, 1) input pixels, clipped to the image)."""
    scale = in_size / out_size
    support = max(scale, 1.)
    taps = 0
    for i in range(out_size):
        centre = scale * (i + 0.5)
        taps += min(int(centre + support + 0.5), in_size) - max(int(centre - support + 0.5), 0)
    return taps


def antialiased_resize_macs(in_hw: HW, out_hw: HW, maps: int) -> int:
    """Multiply-adds of an anti-aliased bilinear resize of ``maps`` planes: a horizontal then a vertical pass,
    each skipped when its axis keeps its size. FlopAnalyzer has no rule for this op, so GLD reports it."""
    (in_h, in_w), (out_h, out_w) = in_hw, out_hw
    horizontal = in_h * _antialiased_taps(in_w, out_w) if in_w != out_w else 0
    vertical = out_w * _antialiased_taps(in_h, out_h) if in_h != out_h else 0
    return maps * (horizontal + vertical)


def global_grid(ref_hw: HW, num_global: int) -> Optional[HW]:
    """Spatial layout of the global tokens: the reference grid with its height scaled by N.

    For N = 0.5 and a 56x56 reference grid this is 28x56 (the paper's N = 0.5). ``None`` when ``num_global`` is not a
    whole number of reference rows (an N with no grid layout); the features that need one then refuse to build.
    """
    width = ref_hw[1]
    return (num_global // width, width) if num_global % width == 0 else None


# --- 1. local branch: window multi-head self-attention ----------------------------------------------------------
class WindowAttention(BaseModule):
    """Multi-head self-attention inside non-overlapping ``w x w`` windows with a learned relative-position bias.

    The feature map is zero-padded at the bottom/right to a multiple of ``w`` and cropped afterwards (mmdet Swin's
    convention). With ``shift`` the windows move by ``w // 2`` and tokens from different image regions are masked
    from each other, as in Swin; MAFormer's default is unshifted (GLD already connects windows).
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, shift: bool = False,
                 qkv_bias: bool = True, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1)**2, num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing='ij'))
        coords = coords.flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]) + (window_size - 1)
        self.register_buffer('relative_position_index', relative[0] * (2 * window_size - 1) + relative[1],
                             persistent=False)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def init_weights(self) -> None:
        super().init_weights()
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _relative_position_bias(self) -> torch.Tensor:
        area = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.reshape(area, area, self.num_heads).permute(2, 0, 1)  # (heads, w^2, w^2)

    def _shift_mask(self, padded_hw: HW, device) -> torch.Tensor:
        """(windows, w^2, w^2) additive mask keeping each shifted window's attention inside one image region."""
        height, width = padded_hw
        w, s = self.window_size, self.shift_size
        region = torch.zeros(height, width, device=device)
        label = 0
        for rows in (slice(0, -w), slice(-w, -s), slice(-s, None)):
            for cols in (slice(0, -w), slice(-w, -s), slice(-s, None)):
                region[rows, cols] = label
                label += 1
        region = region.reshape(height // w, w, width // w, w).transpose(1, 2).reshape(-1, w * w)
        different = region[:, :, None] != region[:, None, :]
        return torch.zeros(different.shape, device=device).masked_fill(different, float('-inf'))

    def forward(self, x: torch.Tensor, hw: HW) -> torch.Tensor:
        batch, _, channels = x.shape
        height, width = hw
        w = self.window_size
        fmap = x.reshape(batch, height, width, channels)
        pad_h, pad_w = (-height) % w, (-width) % w
        if pad_h or pad_w:
            fmap = F.pad(fmap, (0, 0, 0, pad_w, 0, pad_h))
        padded_h, padded_w = height + pad_h, width + pad_w
        if self.shift_size:
            fmap = torch.roll(fmap, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        windows = fmap.reshape(batch, padded_h // w, w, padded_w // w, w, channels).transpose(2, 3)
        # (B * windows, w^2, C): SDPA on 4-D inputs. With a 5-D (B, windows, ...) query, inductor's lowering of
        # SDPA cannot broadcast the (heads, w^2, w^2) bias and fails to compile.
        windows = windows.reshape(-1, w * w, channels)

        q, k, v = split_fused_qkv(self.qkv(windows), self.num_heads)
        mask = self._relative_position_bias().to(q.dtype)  # broadcasts over B * windows
        if self.shift_size:
            shift_mask = self._shift_mask((padded_h, padded_w), x.device).to(q.dtype)[:, None]  # (windows, 1, ...)
            mask = (mask + shift_mask).repeat(batch, 1, 1, 1)  # window-major within each image, as the batch axis
        out = self.proj(merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask)))

        out = out.reshape(batch, padded_h // w, padded_w // w, w, w, channels).transpose(2, 3)
        out = out.reshape(batch, padded_h, padded_w, channels)
        if self.shift_size:
            out = torch.roll(out, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        return out[:, :height, :width].reshape(batch, height * width, channels)


# --- 2. global branch: Global Learning with Down-sampling (GLD) ------------------------------------------------
class GlobalDownsampling(UntracedFlopsMixin, BaseModule):
    """GLD: a learned FC over the token axis, L0 -> Lg = round(N * L0) tokens, plus a position term.

    Paper (via the third-party restatement): ``X_G = FC(X) + Pos(X)``, the FC acting on the flattened,
    channel-first tokens and shared by all channels. Its weight is ``Lg x L0`` and so tied to one token count.
    The position term is a learned embedding (``with_pos``) or, with ``pos_from_input``, the other reading of the
    paper's description ("the input's token-level position information is encoded into the global representation",
    "Pos uses bilinear interpolation"): the block input itself, bilinearly resampled from its own grid onto the
    global grid, so that global token (i, j) also carries what the input holds at its place. It has no parameters
    and takes any input size.

    OUR DESIGN DECISION (configs/maformer/README.md): the FC is built for a fixed reference grid ``(H0, W0)``, the
    stage's grid at ``pretrain_img_size``. An input of another size is first resampled to ``(H0, W0)`` (bilinear,
    anti-aliased when shrinking, or area); at the reference size nothing is resampled and GLD is exactly the paper's
    operator.
    So parameter shapes do not depend on the input, the fusion memory stays Lg tokens and its cost is linear in
    the number of local tokens. Checkpoints built for another reference grid are converted on load
    (``convert_gld_state``) or refused with an error, never dropped.
    """

    def __init__(self, embed_dims: int, ref_hw: HW, ratio: float = 0.5, resize: str = 'bilinear',
                 with_pos: bool = True, init: str = 'trunc_normal', pos_from_input: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        check_one_of('GlobalDownsampling', 'resize', resize, GLD_RESIZE_MODES)
        check_one_of('GlobalDownsampling', 'init', init, GLD_INIT_MODES)
        if not ratio > 0:
            raise ValueError(f"gld_cfg['ratio'] must be positive, got {ratio}")
        self.ref_hw = tuple(ref_hw)
        num_ref = self.ref_hw[0] * self.ref_hw[1]
        self.num_global = round(ratio * num_ref)
        if self.num_global < 1:
            raise ValueError(f"gld_cfg['ratio'] {ratio} leaves no global token on the {self.ref_hw} reference grid "
                             f'(round({ratio} * {num_ref}) = 0)')
        self.global_hw = global_grid(self.ref_hw, self.num_global)
        if init == 'pool' and self.global_hw != (self.ref_hw[0] // 2, self.ref_hw[1]):
            raise ValueError("gld_cfg init='pool' averages pairs of rows, so it needs ratio=0.5 and an even "
                             f'reference height; got ratio {ratio} on {self.ref_hw}')
        if pos_from_input and self.global_hw is None:
            raise ValueError("gld_cfg pos='from_input' resamples the input onto the global grid, which ratio "
                             f'{ratio} does not have on {self.ref_hw} (N * H0 must be whole rows)')
        if pos_from_input and with_pos:
            raise ValueError('GLD takes one position term: a learned embedding or the resampled input, not both')
        self.pos_from_input = pos_from_input
        self.resize = resize
        self.init = init
        self.token_fc = nn.Linear(num_ref, self.num_global)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_global, embed_dims)) if with_pos else None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self.init == 'pool':
            # global token (i, j) starts as the mean of reference rows 2i and 2i+1 at column j
            height, width = self.ref_hw
            weight = torch.zeros(height // 2, width, height, width)
            rows, cols = torch.meshgrid(torch.arange(height // 2), torch.arange(width), indexing='ij')
            weight[rows, cols, 2 * rows, cols] = 0.5
            weight[rows, cols, 2 * rows + 1, cols] = 0.5
            with torch.no_grad():
                self.token_fc.weight.copy_(weight.reshape(self.num_global, height * width))
        else:
            trunc_normal_(self.token_fc.weight, std=0.02)
        nn.init.zeros_(self.token_fc.bias)
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=0.02)

    def init_weights(self) -> None:
        # runs after the parent's init_cfg, so the GLD-specific initialisation is not overwritten by it
        super().init_weights()
        self._reset_parameters()

    def untraced_flops(self, x: torch.Tensor, hw: HW, pos_embed: Optional[torch.Tensor] = None) -> int:
        """The anti-aliased resamplings of a forward on ``x``, which FlopAnalyzer cannot price (called by
        ``mixformer_mm.utils.flops`` while it counts)."""
        maps = x.shape[0] * x.shape[2]  # batch x channels planes
        macs = 0
        if self.resize == 'bilinear' and (hw[0] > self.ref_hw[0] or hw[1] > self.ref_hw[1]):
            macs += antialiased_resize_macs(hw, self.ref_hw, maps)
        if self.pos_from_input and (hw[0] > self.global_hw[0] or hw[1] > self.global_hw[1]):
            macs += antialiased_resize_macs(hw, self.global_hw, maps)
        return macs

    def forward(self, x: torch.Tensor, hw: HW, pos_embed: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, H*W, C) normalised tokens -> (B, Lg, C) global tokens."""
        batch, _, channels = x.shape
        channel_first = x.transpose(1, 2)  # (B, C, L): the FC mixes tokens, shared over channels
        fmap = channel_first.reshape(batch, channels, *hw)
        if tuple(hw) != self.ref_hw:
            channel_first = resample_grid(fmap, self.ref_hw, self.resize).flatten(2)
        tokens = self.token_fc(channel_first).transpose(1, 2)
        if self.pos_from_input:
            return tokens + resample_grid(fmap, self.global_hw, 'bilinear').flatten(2).transpose(1, 2)
        pos_embed = self.pos_embed if pos_embed is None else pos_embed
        return tokens if pos_embed is None else tokens + pos_embed

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # every way of loading weights (init_cfg, load_from, load_state_dict) converts a GLD of another grid
        convert_gld_state(state_dict, prefix, self.ref_hw, self.num_global)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def resize_token_fc(weight: torch.Tensor, bias: Optional[torch.Tensor], src_ref: HW, dst_ref: HW,
                    src_global: HW, dst_global: HW) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Move a token-FC to another reference grid: bilinear on both axes, input axis rescaled by L0_src / L0_dst.

    The input axis is laid out as the reference grid and the output axis as the global grid. The rescaling keeps
    the response to a smooth input unchanged (each global token stays a weighted mean of the same image area).
    """
    out_features, in_features = weight.shape
    if in_features != src_ref[0] * src_ref[1] or out_features != src_global[0] * src_global[1]:
        raise ValueError(f'token_fc weight {tuple(weight.shape)} does not fit reference grid {src_ref} and '
                         f'global grid {src_global}')
    dtype = weight.dtype
    grid = weight.float().reshape(out_features, 1, *src_ref)
    grid = resample_grid(grid, dst_ref) * (in_features / (dst_ref[0] * dst_ref[1]))  # input axis
    grid = grid.reshape(*src_global, -1).permute(2, 0, 1)  # (L0_dst, Hg, Wg)
    grid = resample_grid(grid.unsqueeze(1), dst_global).squeeze(1)  # output axis
    new_weight = grid.flatten(1).t().contiguous().to(dtype)
    new_bias = None
    if bias is not None:
        new_bias = resample_grid(bias.float().reshape(1, 1, *src_global), dst_global).flatten().to(bias.dtype)
    return new_weight, new_bias


def resize_pos_embed(pos_embed: torch.Tensor, src_global: Optional[HW], dst_global: HW) -> torch.Tensor:
    """(1, Hg*Wg, C) (on the grid ``src_global``) or (1, C, Hg, Wg) position embedding, resized bilinearly."""
    if pos_embed.dim() == 4:
        return resample_grid(pos_embed.float(), dst_global).to(pos_embed.dtype)
    channels = pos_embed.shape[-1]
    grid = pos_embed.float().transpose(1, 2).reshape(1, channels, *src_global)
    return resample_grid(grid, dst_global).flatten(2).transpose(1, 2).to(pos_embed.dtype)


def infer_reference_grid(num_ref: int, like: HW) -> HW:
    """The grid of ``num_ref`` tokens with the aspect ratio of ``like`` (square for square pretraining)."""
    height = round(math.sqrt(num_ref * like[0] / like[1]))
    if height == 0 or num_ref % height:
        raise ValueError(f'cannot lay {num_ref} reference tokens out with the aspect ratio of {like}; convert the '
                         'checkpoint with tools/model_converters/maformer_resize_gld.py giving --src-size')
    return height, num_ref // height


def convert_gld_state(state_dict: dict, prefix: str, dst_ref: HW, dst_num_global: int,
                      src_ref: Optional[HW] = None) -> bool:
    """Convert, in place, the GLD tensors under ``prefix`` to the reference grid ``dst_ref`` with
    ``dst_num_global`` global tokens.

    Returns whether anything changed. The source grid is ``src_ref`` or inferred from the token count with the
    aspect ratio of ``dst_ref``; source and target must have the same ratio N (the global grid then follows).
    Raises ``ValueError`` naming the key when the shapes cannot be converted.
    """
    key = prefix + 'token_fc.weight'
    dst_shape = (dst_num_global, dst_ref[0] * dst_ref[1])
    if key not in state_dict or tuple(state_dict[key].shape) == dst_shape:
        return False
    weight = state_dict[key]
    num_global, num_ref = weight.shape
    src_ref = tuple(src_ref) if src_ref is not None else infer_reference_grid(num_ref, dst_ref)
    src_global, dst_global = global_grid(src_ref, num_global), global_grid(dst_ref, dst_num_global)
    if (num_ref != src_ref[0] * src_ref[1] or src_global is None or dst_global is None
            or src_global[0] * dst_ref[0] != dst_global[0] * src_ref[0]):
        raise ValueError(f'{key}: the checkpoint\'s GLD {tuple(weight.shape)} (ratio {num_global / num_ref:.4g}, '
                         f'reference grid {src_ref}) cannot be converted to the model\'s {dst_shape} (ratio '
                         f'{dst_num_global / dst_shape[1]:.4g}, reference grid {tuple(dst_ref)}): the gld_ratio '
                         'differs or has no grid layout. Build the model with the pretrain_img_size and gld_ratio '
                         'of the checkpoint.')
    bias_key = prefix + 'token_fc.bias'
    new_weight, new_bias = resize_token_fc(weight, state_dict.get(bias_key), src_ref, dst_ref, src_global,
                                           dst_global)
    state_dict[key] = new_weight
    if new_bias is not None:
        state_dict[bias_key] = new_bias
    pos_key = prefix + 'pos_embed'
    if pos_key in state_dict:
        state_dict[pos_key] = resize_pos_embed(state_dict[pos_key], src_global, dst_global)
    return True


# --- 3. fusion: local tokens attend to the global tokens -------------------------------------------------------
class AttentionFusion(BaseModule):
    """MAF fusion: ``softmax(Q_L K_G^T / sqrt(d)) V_G``, queries from local tokens, keys/values from GLD tokens.

    Paper: three separate projections, the output has the local token count. Ours: LayerNorm on the queries and on
    the keys/values, an output projection, the stage's heads. ``mode`` offers two ablation alternatives
    (ours): ``'add'`` (global tokens upsampled to the local grid, projected, added) and
    ``'concat_linear'`` (local and upsampled global concatenated, then a linear layer); both need a global grid.
    """

    def __init__(self, embed_dims: int, num_heads: int, mode: str = 'cross_attn', global_hw: Optional[HW] = None,
                 qkv_bias: bool = True, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        check_one_of('AttentionFusion', 'mode', mode, FUSION_MODES)
        if mode != 'cross_attn' and global_hw is None:
            raise ValueError(f"fusion_cfg mode={mode!r} places the global tokens on a grid, which this gld_cfg "
                             "ratio does not have; use fusion_cfg=dict(mode='cross_attn') or gld_cfg=dict(ratio=0.5)")
        self.mode = mode
        self.num_heads = num_heads
        self.global_hw = global_hw
        self.norm_kv = nn.LayerNorm(embed_dims)
        if mode == 'cross_attn':
            self.norm_q = nn.LayerNorm(embed_dims)
            self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
            self.k = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
            self.v = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
            self.proj = nn.Linear(embed_dims, embed_dims)
        elif mode == 'add':
            self.proj = nn.Linear(embed_dims, embed_dims)
        else:
            self.norm_q = nn.LayerNorm(embed_dims)
            self.proj = nn.Linear(2 * embed_dims, embed_dims)

    def _global_on_local_grid(self, global_tokens: torch.Tensor, hw: HW) -> torch.Tensor:
        batch, _, channels = global_tokens.shape
        grid = global_tokens.transpose(1, 2).reshape(batch, channels, *self.global_hw)
        return resample_grid(grid, hw).flatten(2).transpose(1, 2)

    def forward(self, local_tokens: torch.Tensor, global_tokens: torch.Tensor, hw: HW) -> torch.Tensor:
        """Return the fusion branch output (B, L, C); the caller adds it to the local tokens."""
        global_tokens = self.norm_kv(global_tokens)
        if self.mode == 'add':
            return self.proj(self._global_on_local_grid(global_tokens, hw))
        if self.mode == 'concat_linear':
            upsampled = self._global_on_local_grid(global_tokens, hw)
            return self.proj(torch.cat([self.norm_q(local_tokens), upsampled], dim=-1))
        q = split_heads(self.q(self.norm_q(local_tokens)), self.num_heads)
        k = split_heads(self.k(global_tokens), self.num_heads)
        v = split_heads(self.v(global_tokens), self.num_heads)
        # SDPA: the L x Lg score matrix is never materialised by the fused kernels
        return self.proj(merge_heads(F.scaled_dot_product_attention(q, k, v)))


# --- 4. MAF block ----------------------------------------------------------------------------------------------
class MAFBlock(BaseModule):
    """Multi-scale Attention Fusion block (stages 1-2).

    local:  x_l = x + DP(WMSA(LN(x)));  x_l = x_l + DP(MLP(LN(x_l)))      (paper's local branch)
    global: x_g = GLD(LN(x))                                             (GLD on the block input, as in the paper)
    fuse:   out = x_l + DP(Fusion(x_l, x_g))                             (residual: ours)
    optional (``fusion_cfg['ffn']``, ours, off): out = out + DP(MLP'(LN(out)))
    optional (``cpe``, ours, off): x = x + DWConv3x3(x) first (a conditional position encoding)
    """

    def __init__(self, embed_dims: int, num_heads: int, ref_hw: HW, window_size: int = 7, mlp_ratio: float = 4.,
                 drop_path_rate: float = 0., shift: bool = False, gld_cfg: Optional[dict] = None,
                 fusion_cfg: Optional[dict] = None, qkv_bias: bool = True, cpe: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.cpe = ConvPositionEncoding(embed_dims) if cpe else None
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = WindowAttention(embed_dims, num_heads, window_size, shift=shift, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims)
        self.ffn = token_ffn(embed_dims, mlp_ratio, drop_path_rate)

        self.norm_gld = nn.LayerNorm(embed_dims)
        gld_cfg = merge_options('MAFBlock', 'gld_cfg', gld_cfg, GLD_DEFAULTS)
        fusion_cfg = merge_options('MAFBlock', 'fusion_cfg', fusion_cfg, FUSION_DEFAULTS)
        self.gld = GlobalDownsampling(embed_dims, ref_hw, gld_cfg['ratio'], resize=gld_cfg['resize'],
                                      with_pos=gld_cfg['pos'] == 'per_block', init=gld_cfg['init'],
                                      pos_from_input=gld_cfg['pos'] == 'from_input')
        self.fusion = AttentionFusion(embed_dims, num_heads, mode=fusion_cfg['mode'], global_hw=self.gld.global_hw,
                                      qkv_bias=qkv_bias)
        self.fusion_ffn = None
        if fusion_cfg['ffn']:
            self.norm3 = nn.LayerNorm(embed_dims)
            self.fusion_ffn = token_ffn(embed_dims, mlp_ratio, drop_path_rate)

    def forward(self, x: torch.Tensor, hw: HW, gld_pos: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.cpe is not None:
            x = self.cpe(x, hw)
        local = x + self.drop_path(self.attn(self.norm1(x), hw))
        local = self.ffn(self.norm2(local), identity=local)
        global_tokens = self.gld(self.norm_gld(x), hw, gld_pos)
        out = local + self.drop_path(self.fusion(local, global_tokens, hw))
        if self.fusion_ffn is not None:
            out = self.fusion_ffn(self.norm3(out), identity=out)
        return out


# --- 5. global block (stages 3-4) ------------------------------------------------------------------------------
class GlobalAttention(BaseModule):
    """Full multi-head self-attention over all tokens; with ``lepe`` CSWin's locally-enhanced position encoding
    (a depthwise 3x3 conv on V, added to the attention output) - our choice of position term."""

    def __init__(self, embed_dims: int, num_heads: int, lepe: bool = True, qkv_bias: bool = True, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.lepe = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims) if lepe else None
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: torch.Tensor, hw: HW) -> torch.Tensor:
        q, k, v = split_fused_qkv(self.qkv(x), self.num_heads)
        out = merge_heads(F.scaled_dot_product_attention(q, k, v))
        if self.lepe is not None:
            # V's tokens (a strided view: a slice of the fused projection) viewed as a channels-last map; the
            # conv's output is channels-last, so its tokens are contiguous
            out = out + map_to_tokens(self.lepe(tokens_to_map(merge_heads(v), hw)))
        return self.proj(out)


class GlobalBlock(BaseModule):
    """Pre-norm transformer block with global attention: x + DP(MHSA(LN(x))), then x + DP(MLP(LN(x))); with
    ``cpe`` (ours, off) x + DWConv3x3(x) first."""

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float = 4., drop_path_rate: float = 0.,
                 lepe: bool = True, qkv_bias: bool = True, cpe: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.cpe = ConvPositionEncoding(embed_dims) if cpe else None
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = GlobalAttention(embed_dims, num_heads, lepe=lepe, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims)
        self.ffn = token_ffn(embed_dims, mlp_ratio, drop_path_rate)

    def forward(self, x: torch.Tensor, hw: HW, gld_pos: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.cpe is not None:
            x = self.cpe(x, hw)
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return self.ffn(self.norm2(x), identity=x)


# --- 6. network ------------------------------------------------------------------------------------------------
class ConvEmbedding(BaseModule):
    """Conv then LayerNorm over channels: CSWin's stem (k7 s4 p2) and ``Merge_Block`` (k3 s2 p1); with a ``conv``
    module given, that module (e.g. the overlapping 3x3 stem) instead of the single conv."""

    def __init__(self, in_channels: int, embed_dims: int, kernel_size: int = 3, stride: int = 2, padding: int = 1,
                 conv: Optional[nn.Module] = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.conv = conv if conv is not None else nn.Conv2d(in_channels, embed_dims, kernel_size, stride=stride,
                                                            padding=padding)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, HW]:
        x = self.conv(x)
        hw = tuple(x.shape[-2:])
        return self.norm(map_to_tokens(x)), hw


class MAFormerStage(BaseModule):
    """A merge (stages 2-4), then MAF or global blocks.

    With ``gld_cfg=dict(pos='shared_interp')`` (ours, optional) the blocks of an MAF stage share one GLD position
    embedding: the first MAF stage owns a base embedding on its global grid; a later MAF stage resizes the previous
    stage's embedding to its own global grid and maps its channels with a learned linear layer.
    """

    def __init__(self, in_channels: int, embed_dims: int, depth: int, num_heads: int, use_maf: bool,
                 ref_hw: HW, drop_path_rates: Sequence[float], downsample: bool, mlp_ratio: float = 4.,
                 window_size: int = 7, shift_windows: bool = False, gld_cfg: Optional[dict] = None,
                 shared_pos_source: Optional[Tuple[int, HW]] = None, fusion_cfg: Optional[dict] = None,
                 global_pos: str = 'lepe', qkv_bias: bool = True, cpe: bool = False, with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.use_maf = use_maf
        self.downsample = ConvEmbedding(in_channels, embed_dims, 3, 2, 1) if downsample else None
        gld_cfg = merge_options('MAFormerStage', 'gld_cfg', gld_cfg, GLD_DEFAULTS)
        blocks = []
        for i in range(depth):
            if use_maf:
                blocks.append(MAFBlock(
                    embed_dims, num_heads, ref_hw, window_size=window_size, mlp_ratio=mlp_ratio,
                    drop_path_rate=drop_path_rates[i], shift=shift_windows and i % 2 == 1, gld_cfg=gld_cfg,
                    fusion_cfg=fusion_cfg, qkv_bias=qkv_bias, cpe=cpe))
            else:
                blocks.append(GlobalBlock(embed_dims, num_heads, mlp_ratio=mlp_ratio,
                                          drop_path_rate=drop_path_rates[i], lepe=global_pos == 'lepe',
                                          qkv_bias=qkv_bias, cpe=cpe))
        self.blocks = ModuleList(blocks)

        self.global_hw = blocks[0].gld.global_hw if use_maf else None
        self.pos_embed = self.pos_proj = None
        if use_maf and gld_cfg['pos'] == 'shared_interp':
            if self.global_hw is None:
                raise ValueError("gld_cfg pos='shared_interp' lays the embedding out on the global grid, which "
                                 "this ratio does not have; use gld_cfg=dict(pos='per_block')")
            if shared_pos_source is None:  # the first MAF stage owns the base embedding
                self.pos_embed = nn.Parameter(torch.zeros(1, embed_dims, *self.global_hw))
                trunc_normal_(self.pos_embed, std=0.02)
            else:
                self.pos_proj = nn.Linear(shared_pos_source[0], embed_dims)

    def init_weights(self) -> None:
        super().init_weights()
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=0.02)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + 'pos_embed'
        if self.pos_embed is not None and key in state_dict:
            given = state_dict[key]
            if given.shape != self.pos_embed.shape and given.shape[:2] == self.pos_embed.shape[:2]:
                # a shared GLD embedding of another reference grid (another pretrain_img_size)
                state_dict[key] = resize_pos_embed(given, None, self.global_hw)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def shared_gld_pos(self, previous: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """This stage's shared GLD embedding (1, C, Hg, Wg), from its own base or from the previous MAF stage's."""
        if self.pos_embed is not None:
            return self.pos_embed
        if self.pos_proj is not None:
            resized = resample_grid(previous, self.global_hw)
            return self.pos_proj(resized.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return None

    def forward(self, x: torch.Tensor, hw: HW, previous_pos: Optional[torch.Tensor] = None):
        if self.downsample is not None:
            x, hw = self.downsample(tokens_to_map(x, hw))
        shared_pos = self.shared_gld_pos(previous_pos)
        tokens_pos = None if shared_pos is None else shared_pos.flatten(2).transpose(1, 2)
        for block in self.blocks:
            x = checkpointed(block, x, hw, tokens_pos, enabled=self.with_cp)
        return x, hw, shared_pos


def adapt_gld_state_dict(model: nn.Module, state_dict: dict, prefix: str = '',
                         src_img_size: Optional[Union[int, Sequence[int]]] = None) -> list:
    """Convert, in place, every GLD tensor of ``state_dict`` to the reference grids of ``model``'s GLD modules.

    ``prefix`` is the checkpoint's prefix of ``model`` (e.g. ``'backbone.'``). ``src_img_size`` is the
    checkpoint's ``pretrain_img_size`` (needed only for non-square sizes; square is assumed otherwise). Returns
    the converted keys; raises ``ValueError`` naming the key when a GLD cannot be converted.
    """
    converted = []
    src_hw = _pair(src_img_size) if src_img_size is not None else None
    stem = next((m.stem_type for m in model.modules() if isinstance(m, MAFormer)), 'cswin')
    for name, module in model.named_modules():
        module_prefix = f'{prefix}{name}.' if name else prefix
        if isinstance(module, GlobalDownsampling):
            src_ref = None
            if src_hw is not None:  # the reference grid of the same stage at the source size
                stage = re.search(r'(?:^|\.)stages\.(\d+)\.', name)
                if stage is None:
                    raise ValueError(f'{name}: a GLD outside MAFormer.stages; cannot tell its stage')
                src_ref = _stage_grid(src_hw, int(stage.group(1)), stem)
            if convert_gld_state(state_dict, module_prefix, module.ref_hw, module.num_global, src_ref=src_ref):
                converted += [module_prefix + k for k in ('token_fc.weight', 'token_fc.bias', 'pos_embed')
                              if module_prefix + k in state_dict]
        elif isinstance(module, MAFormerStage) and module.pos_embed is not None:
            key = module_prefix + 'pos_embed'
            if key in state_dict and state_dict[key].shape != module.pos_embed.shape:
                given = state_dict[key]
                if given.dim() != 4 or given.shape[:2] != module.pos_embed.shape[:2]:
                    raise ValueError(f'{key}: checkpoint {tuple(given.shape)} cannot be resized to '
                                     f'{tuple(module.pos_embed.shape)}')
                state_dict[key] = resize_pos_embed(given, given.shape[-2:], module.global_hw)
                converted.append(key)
    return converted


def resize_gld_checkpoint(state_dict: dict, src_img_size: Union[int, Sequence[int]],
                          dst_img_size: Union[int, Sequence[int]], gld_ratio: float = 0.5,
                          stem: str = 'cswin') -> list:
    """Convert, in place, a MAFormer checkpoint's GLD tensors from ``pretrain_img_size=src_img_size`` to
    ``dst_img_size`` without building a model (any key prefix; ``stem`` as the model's). Returns the converted
    keys."""
    check_one_of('resize_gld_checkpoint', 'stem', stem, STEM_MODES)
    src_hw, dst_hw = _pair(src_img_size), _pair(dst_img_size)
    converted = []
    for key in list(state_dict):
        match = re.fullmatch(r'(.*stages\.(\d+)\.(?:.*\.)?gld\.)token_fc\.weight', key)
        if match:
            prefix, stage = match.group(1), int(match.group(2))
            dst_ref = _stage_grid(dst_hw, stage, stem)
            num_global = round(gld_ratio * dst_ref[0] * dst_ref[1])
            if convert_gld_state(state_dict, prefix, dst_ref, num_global, src_ref=_stage_grid(src_hw, stage, stem)):
                converted += [prefix + k for k in ('token_fc.weight', 'token_fc.bias', 'pos_embed')
                              if prefix + k in state_dict]
            continue
        match = re.fullmatch(r'.*stages\.(\d+)\.pos_embed', key)
        if match and state_dict[key].dim() == 4:  # gld_pos='shared_interp' base embedding, (1, C, Hg, Wg)
            dst_ref = _stage_grid(dst_hw, int(match.group(1)), stem)
            dst_global = global_grid(dst_ref, round(gld_ratio * dst_ref[0] * dst_ref[1]))
            if dst_global is None:
                raise ValueError(f'{key}: gld_ratio {gld_ratio} has no grid layout on {dst_ref}')
            if tuple(state_dict[key].shape[-2:]) != dst_global:
                state_dict[key] = resize_pos_embed(state_dict[key], None, dst_global)
                converted.append(key)
    return converted


def _stage_grid(img_hw: HW, stage: int, stem: str = 'cswin') -> HW:
    """Token grid of ``stage`` for an input of ``img_hw``: the stride-4 stem (CSWin's k7 p2, or two 3x3 s2
    convs), then ceil-halving."""
    grid = tuple((s - 3) // 4 + 1 for s in img_hw) if stem == 'cswin' else overlapping_stem_grid(img_hw)
    for _ in range(stage):
        grid = tuple(-(-s // 2) for s in grid)
    return grid


@register_model
class MAFormer(HierarchicalBackbone):
    """MAFormer backbone for classification, detection and segmentation.

    Args:
        arch (str | dict): ``'s'``, ``'b'``, ``'l'`` (our sizes on the CSWin T/S/B skeletons; the paper's S/B/L
            sizes are unknown) or a dict with ``embed_dims`` (an int C for widths C, 2C, 4C, 8C, or four
            widths), ``depths`` and ``num_heads`` (four values each) and optionally ``mlp_ratio`` (4).
        in_channels (int): Input channels. Defaults to 3.
        stem (str): ``'cswin'`` (CSWin's 7x7 stride-4 conv + LayerNorm, default) or ``'conv'`` (ours, optional: two
            overlapping 3x3 stride-2 convs, the first with ``norm_cfg`` and GELU, then the LayerNorm).
        cpe (bool): A conditional position encoding, x + DWConv3x3(x), at the start of every block (ours, off).
        norm_cfg (dict): Norm inside the ``'conv'`` stem: BN (default) or SyncBN. Unused by the ``'cswin'`` stem.
        window_size (int): Local attention window of the MAF blocks. Defaults to 7 (ours).
        shift_windows (bool): Shift every second MAF block's windows by half a window (Swin). Off by default (ours).
        pretrain_img_size (int | tuple): Input size that fixes the GLD reference grids (stride 4 and 8 grids of
            this size). At this size GLD is exactly the paper's token FC; other sizes are resampled to it.
        gld_cfg (dict, optional): The GLD branch; any of these keys (the defaults otherwise):

            - ``ratio`` (float): N, global tokens per reference token. Defaults to 0.5 (paper).
            - ``resize`` (str): ``'bilinear'`` (anti-aliased when shrinking, default) or ``'area'``.
            - ``pos`` (str): ``'per_block'`` (a learned embedding per MAF block, default), ``'shared_interp'`` (one
              per stage, the second stage's a resized and linearly mapped copy of the first's), ``'from_input'``
              (no parameters: the block input bilinearly resampled onto the global grid) or ``'none'``.
            - ``init`` (str): ``'trunc_normal'`` (std 0.02, default) or ``'pool'`` (GLD starts as 2-row average
              pooling).
        fusion_cfg (dict, optional): The fusion of local and global tokens; any of these keys:

            - ``mode`` (str): ``'cross_attn'`` (paper, default), ``'add'`` or ``'concat_linear'`` (ablations, ours).
            - ``ffn`` (bool): An extra MLP after the fusion. Defaults to False (ours).
        global_pos (str): Position term of the global blocks: ``'lepe'`` (CSWin's, default) or ``'none'``.
        maf_stages (Sequence[int]): Stages built of MAF blocks. Defaults to (0, 1) (paper).
        out_indices (Sequence[int]): Stages whose NCHW outputs are returned (strides 4, 8, 16, 32); each gets a
            LayerNorm (the one of index 3 is the classifier's final norm).
        frozen_stages (int): ``-1`` nothing, ``0`` the stem, ``k`` the stem and the first ``k`` stages.
        norm_eval (bool): Keep BatchNorms (only the ``'conv'`` stem has one) in eval mode while training.
        with_cp (bool): Recompute each block's activations in backward to save memory.
        drop_path_rate (float): Stochastic depth of the last block, linear from 0 over all blocks.
        qkv_bias (bool): Bias of the query/key/value projections. Defaults to True.
        init_cfg (dict | list[dict], optional): e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``;
            GLD weights of another reference grid are converted on loading, impossible ones refused.
        **deprecated_flat_options: ``gld_ratio``, ``gld_resize``, ``gld_pos``, ``gld_init``, ``fusion_mode`` and
            ``fusion_ffn``, the former flat form of ``gld_cfg`` and ``fusion_cfg``: still accepted, with a
            ``FutureWarning`` naming the dict to use; they will be removed.
    """

    arch_zoo = {
        's': dict(embed_dims=64, depths=[1, 2, 21, 1], num_heads=[2, 4, 8, 16]),
        'b': dict(embed_dims=64, depths=[2, 4, 32, 2], num_heads=[2, 4, 8, 16]),
        'l': dict(embed_dims=96, depths=[2, 4, 32, 2], num_heads=[4, 8, 16, 32]),
    }
    arch_zoo.update({'small': arch_zoo['s'], 'base': arch_zoo['b'], 'large': arch_zoo['l']})
    arch_keys = ('embed_dims', 'depths', 'num_heads')
    # a classification checkpoint has only the last output norm
    keys_new_by_design = ('out_norms.0.', 'out_norms.1.', 'out_norms.2.')
    output_norm_key = 'out_norms.{}'

    def __init__(self,
                 arch='s',
                 in_channels: int = 3,
                 stem: str = 'cswin',
                 cpe: bool = False,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 window_size: int = 7,
                 shift_windows: bool = False,
                 pretrain_img_size: Union[int, Sequence[int]] = 224,
                 gld_cfg: Optional[dict] = None,
                 fusion_cfg: Optional[dict] = None,
                 global_pos: str = 'lepe',
                 maf_stages: Sequence[int] = (0, 1),
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 drop_path_rate: float = 0.,
                 qkv_bias: bool = True,
                 init_cfg=None,
                 **deprecated_flat_options):
        super().__init__(in_channels=in_channels, out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, with_cp=with_cp,
                         init_cfg=init_cfg)
        arch = self._check_arch(self.parse_arch(arch))
        self.gld_cfg, self.fusion_cfg = self._option_dicts(gld_cfg, fusion_cfg, deprecated_flat_options)
        check_one_of('MAFormer', "gld_cfg['resize']", self.gld_cfg['resize'], GLD_RESIZE_MODES)
        check_one_of('MAFormer', "gld_cfg['pos']", self.gld_cfg['pos'], GLD_POS_MODES)
        check_one_of('MAFormer', "gld_cfg['init']", self.gld_cfg['init'], GLD_INIT_MODES)
        check_one_of('MAFormer', "fusion_cfg['mode']", self.fusion_cfg['mode'], FUSION_MODES)
        check_one_of('MAFormer', 'stem', stem, STEM_MODES)
        check_one_of('MAFormer', 'global_pos', global_pos, GLOBAL_POS_MODES)
        if not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f'window_size must be a positive int, got {window_size!r}')
        self.maf_stages = tuple(sorted(set(maf_stages)))
        if any(not 0 <= s < self.num_stages for s in self.maf_stages):
            raise IndexError(f'maf_stages: {maf_stages} holds a value that is not a stage index (0..3)')
        self.embed_dims = arch['embed_dims']
        self.pretrain_img_size = _pair(pretrain_img_size)
        depths, heads = arch['depths'], arch['num_heads']

        self.stem_type = stem
        if stem == 'cswin':
            self.stem = ConvEmbedding(in_channels, self.embed_dims[0], 7, 4, 2)
        else:
            self.stem = ConvEmbedding(in_channels, self.embed_dims[0], conv=nn.Sequential(
                *overlapping_stem_layers(in_channels, self.embed_dims[0], norm_cfg)))
        ref_hw = _stage_grid(self.pretrain_img_size, 0, stem)
        if min(ref_hw) < 1:
            raise ValueError(f'pretrain_img_size {self.pretrain_img_size} is too small for the stride-4 stem')
        rates = self.stochastic_depth_rates(drop_path_rate, depths)
        self.stages = ModuleList()
        shared_pos_source = None
        for i in range(self.num_stages):
            ref_hw = _stage_grid(self.pretrain_img_size, i, stem)
            stage = MAFormerStage(
                in_channels=self.embed_dims[max(i - 1, 0)], embed_dims=self.embed_dims[i], depth=depths[i],
                num_heads=heads[i], use_maf=i in self.maf_stages, ref_hw=ref_hw, drop_path_rates=rates[i],
                downsample=i > 0, mlp_ratio=arch['mlp_ratio'], window_size=window_size,
                shift_windows=shift_windows, gld_cfg=self.gld_cfg, shared_pos_source=shared_pos_source,
                fusion_cfg=self.fusion_cfg, global_pos=global_pos, qkv_bias=qkv_bias, cpe=cpe, with_cp=with_cp)
            if i in self.maf_stages and self.gld_cfg['pos'] == 'shared_interp':
                shared_pos_source = (self.embed_dims[i], stage.global_hw)
            self.stages.append(stage)
        self.out_norms = nn.ModuleDict({str(i): nn.LayerNorm(self.embed_dims[i]) for i in self.out_indices})
        self._freeze()

    @staticmethod
    def _option_dicts(gld_cfg: Optional[dict], fusion_cfg: Optional[dict], flat_options: dict):
        """Complete ``gld_cfg`` and ``fusion_cfg`` (unknown keys refused), with the deprecated flat options moved
        into them."""
        given = {}
        for group, options in (('gld_cfg', gld_cfg), ('fusion_cfg', fusion_cfg)):
            if options is not None and not isinstance(options, dict):
                raise TypeError(f'MAFormer: {group} must be a dict, got {type(options).__name__}')
            given[group] = dict(options or {})
        for name, value in flat_options.items():
            if name not in DEPRECATED_FLAT_OPTIONS:
                raise TypeError(f'MAFormer got an unexpected keyword argument {name!r}')
            group, key = DEPRECATED_FLAT_OPTIONS[name]
            if key in given[group]:
                raise ValueError(f'MAFormer: {name} and {group}[{key!r}] are the same option; give only {group}')
            warnings.warn(f'MAFormer: {name}={value!r} is deprecated and will be removed; use '
                          f'{group}=dict({key}={value!r})', FutureWarning, stacklevel=3)
            given[group][key] = value
        return (merge_options('MAFormer', 'gld_cfg', given['gld_cfg'], GLD_DEFAULTS),
                merge_options('MAFormer', 'fusion_cfg', given['fusion_cfg'], FUSION_DEFAULTS))

    def _check_arch(self, arch: dict) -> dict:
        dims = arch['embed_dims']
        arch['embed_dims'] = [dims * 2**i for i in range(self.num_stages)] if isinstance(dims, int) else list(dims)
        for key in self.arch_keys:
            if len(arch[key]) != self.num_stages:
                raise ValueError(f'MAFormer: arch[{key!r}] needs {self.num_stages} values, got {arch[key]}')
        bad = [(c, h) for c, h in zip(arch['embed_dims'], arch['num_heads']) if c % h]
        if bad:
            raise ValueError(f'MAFormer: widths not divisible by their heads (width, heads): {bad}')
        if any(d < 1 for d in arch['depths']):
            raise ValueError(f'MAFormer: every stage needs at least one block, got depths {arch["depths"]}')
        arch.setdefault('mlp_ratio', 4.)
        return arch

    def init_weights(self) -> None:
        pretrained, others = self._split_pretrained()
        if pretrained is None:
            super().init_weights()
            return
        # As HierarchicalBackbone.init_weights, plus one step: GLD weights made for another reference grid are
        # converted before the shape check (which would otherwise refuse them).
        self.init_cfg = others or self.default_init_cfg()
        BaseModule.init_weights(self)
        self.init_cfg = [pretrained] + others
        logger = MMLogger.get_current_instance()
        source = pretrained['checkpoint']
        state_dict = unwrap_state_dict(CheckpointLoader.load_checkpoint(source, map_location='cpu'))
        prefix = pretrained.get('prefix') or ''
        if prefix and not prefix.endswith('.'):
            prefix += '.'
        converted = adapt_gld_state_dict(self, state_dict, prefix=prefix)
        if converted:
            logger.info(f'MAFormer: converted {len(converted)} GLD tensors of {source} to the reference grids of '
                        f'pretrain_img_size={self.pretrain_img_size}')
        load_checked_state_dict(self, state_dict, source=source, prefix=pretrained.get('prefix'),
                                allowed_missing=self.keys_new_by_design, logger=logger)
        logger.info(f'MAFormer: loaded {source}' + (f' (prefix {prefix!r})' if prefix else ''))
        self._freeze()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.check_input(x)
        # Channels-last input: the stem's and merges' conv outputs then flatten to tokens without a copy, and the
        # tokens are handed to the merges as channels-last views (see layers/layout.py).
        tokens, hw = self.stem(to_channels_last(x))
        outs, shared_pos = [], None
        for i, stage in enumerate(self.stages):
            tokens, hw, stage_pos = stage(tokens, hw, shared_pos)
            shared_pos = stage_pos if stage_pos is not None else shared_pos
            if i in self.out_indices:
                out = self.out_norms[str(i)](tokens)
                outs.append(tokens_to_map(out, hw).contiguous())
        return tuple(outs)
