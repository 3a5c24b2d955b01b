"""Dynamic Group Attention (DG-Attention), the token mixer of DGT.

Liu et al., "Dynamic Group Transformer: A General Vision Transformer Backbone with Dynamic Group Attention",
IJCAI 2022. Only the idea is known from the paper (queries are divided into groups by k-means, each group selects
its most relevant keys/values by a top-k on the cluster centroid, attention runs within each group); every detail
below is our reconstruction, whose design decisions are listed in
``configs/dgt/README.md``.

Reading order: k-means grouping of the queries (per image and head, fp32, no gradient) -> top-k key selection by
centroid score -> attention of each query over its group's keys, computed one of two ways:

* ``bucketed`` (default): queries are sorted by group and cut into buckets of at most ``bucket_size`` queries;
  every bucket inherits its group's keys, so all buckets of all images and heads form one dense batched
  ``scaled_dot_product_attention`` call. The number of buckets has a static bound, ``ceil(N / S) + G``, so no
  shape depends on the data and no host synchronisation is needed. Memory is linear in N.
* ``masked_dense``: full attention with a mask allowing each query only its group's keys. O(N^2); the reference
  the tests compare ``bucketed`` against.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from mixformer_mm.models.arguments import check_one_of
from mixformer_mm.utils.flops import UntracedFlopsMixin

from .attention import merge_heads, split_fused_qkv
from .layout import map_to_tokens, tokens_to_map

IMPLEMENTATIONS = ('bucketed', 'masked_dense')


# --- grouping -------------------------------------------------------------------------------------------------
def grid_shape(num_groups: int, height: int, width: int) -> Tuple[int, int]:
    """Rows x columns of the centroid-initialisation grid: the most square factorisation of ``num_groups``.

    The larger factor goes along the longer side of the map. Factorisations that fit in the map (no row or column
    pooled from a repeated pixel) are preferred, so that initial centroids are distinct where possible.
    """
    pairs = [(a, num_groups // a) for a in range(1, num_groups + 1) if num_groups % a == 0]
    # orient: more rows than columns only if the map is taller than wide
    pairs = [(max(a, b), min(a, b)) if height > width else (min(a, b), max(a, b)) for a, b in pairs]
    fitting = [p for p in pairs if p[0] <= height and p[1] <= width]
    candidates = fitting or pairs
    # the most square, ties to the fewest rows; a plain loop because torch.compile cannot trace min(key=...)
    best = candidates[0]
    for rows, cols in candidates[1:]:
        if (abs(rows - cols), rows, cols) < (abs(best[0] - best[1]), *best):
            best = (rows, cols)
    return best


def _at_least_fp32(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _flat_rows(index: torch.Tensor, row_length: int) -> torch.Tensor:
    """Indices (R, ...) into each row of an (R, L, d) tensor -> one flat index into its (R * L, d) rows."""
    offset = torch.arange(index.shape[0], device=index.device) * row_length
    return (index + offset.view(-1, *[1] * (index.dim() - 1))).flatten()


def _nearest_centroid(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    # argmin_g |q - c_g|^2 = argmin_g (|c_g|^2 - 2 q.c_g); |q|^2 is the same for every g. One baddbmm writes the
    # (R, N, G) distances once: at high resolution they outgrow the caches, and separate matmul, scale and
    # subtract passes made this the fastest-growing part of the forward from 512x512 to 1024x1024.
    squared_norms = centroids.square().sum(-1).unsqueeze(1)
    distance = torch.baddbmm(squared_norms, points, centroids.transpose(1, 2), alpha=-2)
    return distance.argmin(dim=-1)


def _updates_by_index_add(device: torch.device) -> bool:
    # index_add_ is deterministic on the CPU only (CUDA's adds are atomic, in no fixed order)
    return device.type == 'cpu'


def _centroid_update(points: torch.Tensor, assignment: torch.Tensor, previous: torch.Tensor):
    """Mean of each group's members.

    The sums are an ``index_add_`` on the CPU and a one-hot GEMM elsewhere: both are deterministic there, which a
    ``with_cp`` recomputation and DDP ranks rely on. On the CPU the GEMM's (R, G, N) one-hot outgrows the caches at
    high resolution.
    """
    num_rows, num_points, dims = points.shape
    num_groups = previous.shape[1]
    if _updates_by_index_add(points.device):
        flat_group = _flat_rows(assignment, num_groups)
        sums = points.new_zeros(num_rows * num_groups, dims).index_add_(0, flat_group, points.reshape(-1, dims))
        counts = points.new_zeros(num_rows * num_groups).index_add_(0, flat_group,
                                                                    points.new_ones(num_rows * num_points))
        sums, counts = sums.view(num_rows, num_groups, dims), counts.view(num_rows, num_groups)
    else:
        one_hot = points.new_zeros(num_rows, num_groups, num_points)
        one_hot.scatter_(1, assignment.unsqueeze(1), 1.)
        counts = one_hot.sum(-1)
        sums = one_hot @ points
    means = sums / counts.clamp(min=1).unsqueeze(-1)
    # an empty group keeps its previous centroid
    return torch.where(counts.unsqueeze(-1) > 0, means, previous), counts


@torch.no_grad()
def kmeans_group_queries(queries: torch.Tensor,
                         hw: Tuple[int, int],
                         num_groups: int,
                         iters: int = 1,
                         cosine: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hard k-means of each row's queries, without gradient, in float32 even under AMP (float64 for float64 input).

    Centroids start as the adaptive average of the query map over a ``grid_shape`` grid (deterministic, so a
    recomputation under ``with_cp`` and every DDP rank agree). ``iters`` Lloyd iterations are followed by a final
    assignment and a final update, so each centroid is the exact mean of its final members and
    ``centroid . key`` is the group's mean attention logit for that key.

    Args:
        queries: (R, N, d), N = H * W row-major.
        hw: (H, W).
        num_groups: G <= N.
        iters: Lloyd iterations before the final assignment and update.
        cosine: cluster the l2-normalised queries; the returned centroids are still means of the raw queries.

    Returns:
        assignment (R, N) int64, centroids (R, G, d) and counts (R, G) in the clustering dtype.
    """
    height, width = hw
    raw = queries.detach().to(_at_least_fp32(queries.dtype))
    with torch.autocast(raw.device.type, enabled=False):  # fp32 even under AMP: ties and overflow
        points = F.normalize(raw, dim=-1) if cosine else raw
        # pooled on a channels-last view of the queries themselves, rather than on an NCHW copy of them
        grid = tokens_to_map(points, hw)
        centroids = map_to_tokens(F.adaptive_avg_pool2d(grid, grid_shape(num_groups, height, width)))
        for _ in range(iters + 1):
            assignment = _nearest_centroid(points, centroids)
            centroids, counts = _centroid_update(points, assignment, centroids)
        if cosine:
            centroids, counts = _centroid_update(raw, assignment, centroids)
    return assignment, centroids, counts


@torch.no_grad()
def select_keys(centroids: torch.Tensor, keys: torch.Tensor, topk: int) -> torch.Tensor:
    """Indices (R, G, topk) of the keys with the highest ``centroid . key`` score, per group."""
    with torch.autocast(keys.device.type, enabled=False):
        dtype = _at_least_fp32(keys.dtype)
        scores = centroids.to(dtype) @ keys.detach().to(dtype).transpose(1, 2)
    return scores.topk(topk, dim=-1, sorted=False).indices


# --- attention within groups ----------------------------------------------------------------------------------
def num_buckets_bound(num_tokens: int, num_groups: int, bucket_size: int) -> int:
    """Static upper bound on sum_g ceil(n_g / S) over any split of N tokens into G groups: ceil(N / S) + G."""
    return -(-num_tokens // bucket_size) + num_groups


def bucket_layout(assignment: torch.Tensor, num_groups: int, bucket_size: int, check_bound: bool = False):
    """Where each query goes when its group's queries are cut into buckets of ``bucket_size``.

    Returns the flat slot (bucket * S + position) of every query in its original order (R, N), the group of every
    bucket (R, M) with M = ``num_buckets_bound``, and M. Trailing unused buckets are given group G - 1; their
    query slots stay empty, and their outputs are never read.
    """
    num_rows, num_tokens = assignment.shape
    size = bucket_size
    counts = torch.zeros(num_rows, num_groups, dtype=torch.long, device=assignment.device)
    counts.scatter_add_(1, assignment, torch.ones_like(assignment))
    group_start = counts.cumsum(1) - counts
    sorted_groups, order = torch.sort(assignment, dim=1, stable=True)
    positions = torch.arange(num_tokens, device=assignment.device).expand(num_rows, num_tokens)
    rank_in_group = positions - group_start.gather(1, sorted_groups)
    buckets_per_group = (counts + size - 1) // size
    bucket_end = buckets_per_group.cumsum(1)
    bucket_start = bucket_end - buckets_per_group
    bucket = bucket_start.gather(1, sorted_groups) + torch.div(rank_in_group, size, rounding_mode='floor')
    slot_sorted = bucket * size + rank_in_group.remainder(size)
    slot = torch.empty_like(slot_sorted).scatter_(1, order, slot_sorted)

    max_buckets = num_buckets_bound(num_tokens, num_groups, size)
    if check_bound and int(bucket_end[:, -1].max()) > max_buckets:  # host sync: debugging only
        raise AssertionError(f'{int(bucket_end[:, -1].max())} buckets exceed the static bound {max_buckets}')
    bucket_ids = torch.arange(max_buckets, device=assignment.device).expand(num_rows, max_buckets).contiguous()
    bucket_group = torch.searchsorted(bucket_end, bucket_ids, right=True).clamp_(max=num_groups - 1)
    return slot, bucket_group, max_buckets


def bucketed_group_attention(q: torch.Tensor,
                             k: torch.Tensor,
                             v: torch.Tensor,
                             assignment: torch.Tensor,
                             key_index: torch.Tensor,
                             bucket_size: int,
                             check_bound: bool = False) -> torch.Tensor:
    """softmax(q_i K_g^T / sqrt(d)) V_g for every query i of group g = assignment[i], K_g = k[key_index[g]].

    Args:
        q, k, v: (R, N, d).
        assignment: (R, N) group of each query.
        key_index: (R, G, topk) keys selected by each group.
        bucket_size: S, queries per bucket.
    Returns:
        (R, N, d) in the original token order.
    """
    num_rows, num_tokens, dims = q.shape
    num_groups, topk = key_index.shape[1:]
    slot, bucket_group, max_buckets = bucket_layout(assignment, num_groups, bucket_size, check_bound)

    # one gather of K and V per bucket (never per query): (R, M, topk, d)
    bucket_keys = key_index.gather(1, bucket_group.unsqueeze(-1).expand(num_rows, max_buckets, topk))
    flat_index = _flat_rows(bucket_keys, num_tokens)
    k_buckets = k.reshape(num_rows * num_tokens, dims).index_select(0, flat_index)
    v_buckets = v.reshape(num_rows * num_tokens, dims).index_select(0, flat_index)
    k_buckets = k_buckets.view(num_rows, max_buckets, topk, dims)
    v_buckets = v_buckets.view(num_rows, max_buckets, topk, dims)

    # Queries move as whole rows of d channels, by one index per row: a gather/scatter along dim 1 with the slots
    # expanded over the channels reads an int64 index per element, and cost DGT-T's forward 30% of its GPU time.
    num_slots = max_buckets * bucket_size
    flat_slot = _flat_rows(slot, num_slots)
    q_buckets = q.new_zeros(num_rows * num_slots, dims).index_copy(0, flat_slot, q.reshape(-1, dims))
    q_buckets = q_buckets.view(num_rows, max_buckets, bucket_size, dims)

    out = F.scaled_dot_product_attention(q_buckets, k_buckets, v_buckets)
    return out.reshape(num_rows * num_slots, dims).index_select(0, flat_slot).view(num_rows, num_tokens, dims)


def masked_dense_group_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, assignment: torch.Tensor,
                                 key_index: torch.Tensor) -> torch.Tensor:
    """The same result as :func:`bucketed_group_attention` by O(N^2) masked attention (test reference)."""
    num_rows, num_tokens, _ = q.shape
    num_groups = key_index.shape[1]
    allowed = torch.zeros(num_rows, num_groups, num_tokens, dtype=torch.bool, device=q.device)
    allowed.scatter_(2, key_index, torch.ones_like(key_index, dtype=torch.bool))
    mask = allowed.gather(1, assignment.unsqueeze(-1).expand(num_rows, num_tokens, num_tokens))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


# --- the module -----------------------------------------------------------------------------------------------
class DGAttention(UntracedFlopsMixin, BaseModule):
    """Dynamic Group Attention over a (B, H*W, C) token map.

    Args:
        embed_dims: C.
        num_heads: h; head width d = C / h.
        groups: G, groups per head (per image when ``share_groups``). Capped at N.
        topk: k, keys selected per group, or None for all keys. When k >= N every group sees every key and the
            module computes exact global multi-head attention (no clustering).
        kmeans_iters: T, Lloyd iterations before the final assignment and update.
        bucket_size: S, the most queries per bucket of the ``bucketed`` implementation (cost only, not the
            result). The bucket actually used is ``min(S, ceil(N / G))``: with groups smaller than S on average,
            full-size buckets would be mostly padding.
        impl: 'bucketed' or 'masked_dense'.
        share_groups: cluster the full C-dim queries once per image and give every head the same groups.
        cosine: cluster l2-normalised queries.
        qkv_bias: bias of the fused QKV projection.
        auto_group_size: if given, G follows the resolution, ``clamp(round(N / auto_group_size), 1,
            auto_max_groups)`` (the backbone's ``groups='auto'``); otherwise G is fixed.
        auto_max_groups: upper bound of G in auto mode.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 groups: int = 64,
                 topk: Optional[int] = 64,
                 kmeans_iters: int = 1,
                 bucket_size: int = 64,
                 impl: str = 'bucketed',
                 share_groups: bool = False,
                 cosine: bool = False,
                 qkv_bias: bool = True,
                 auto_group_size: Optional[int] = None,
                 auto_max_groups: int = 256,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads != 0:
            raise ValueError(f'DGAttention: embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        check_one_of('DGAttention', 'impl', impl, IMPLEMENTATIONS)
        if groups < 1 or (topk is not None and topk < 1) or kmeans_iters < 0 or bucket_size < 1:
            raise ValueError(f'DGAttention: need groups >= 1, topk >= 1 (or None), kmeans_iters >= 0 and '
                             f'bucket_size >= 1; got {groups}, {topk}, {kmeans_iters}, {bucket_size}')
        if auto_group_size is not None and (auto_group_size < 1 or auto_max_groups < 1):
            raise ValueError('DGAttention: auto_group_size and auto_max_groups must be >= 1')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.groups = groups
        self.topk = topk
        self.kmeans_iters = kmeans_iters
        self.bucket_size = bucket_size
        self.impl = impl
        self.share_groups = share_groups
        self.cosine = cosine
        self.auto_group_size = auto_group_size
        self.auto_max_groups = auto_max_groups
        self.check_bucket_bound = False  # debugging aid: verifies the static bound with a host sync
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.last_grouping = None  # set by forward when `record_grouping` is on (visualisation)
        self.record_grouping = False

    # -- sizes for a given input
    def effective_topk(self, num_tokens: int) -> int:
        return num_tokens if self.topk is None else min(self.topk, num_tokens)

    def effective_groups(self, num_tokens: int) -> int:
        groups = self.groups
        if self.auto_group_size is not None:
            groups = min(max(round(num_tokens / self.auto_group_size), 1), self.auto_max_groups)
        return min(groups, num_tokens)

    def effective_bucket_size(self, num_tokens: int) -> int:
        return min(self.bucket_size, -(-num_tokens // self.effective_groups(num_tokens)))

    def is_global(self, num_tokens: int) -> bool:
        return self.effective_topk(num_tokens) >= num_tokens

    # -- forward
    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        batch, num_tokens, _ = x.shape
        if hw[0] * hw[1] != num_tokens:
            raise ValueError(f'DGAttention: {num_tokens} tokens do not form a {hw[0]}x{hw[1]} map')
        heads, dims = self.num_heads, self.head_dims
        qkv = self.qkv(x)

        if self.is_global(num_tokens):
            out = F.scaled_dot_product_attention(*split_fused_qkv(qkv, heads))
        else:
            rows = batch * heads
            # Q, K and V as contiguous (B*h, N, d) rows, in one copy: the clustering, the key scoring and the
            # bucket gathers would each copy strided rows again
            qkv = qkv.view(batch, num_tokens, 3, heads, dims).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.reshape(3, rows, num_tokens, dims).contiguous().unbind(0)
            assignment, key_index = self.group_and_select(q, k, hw)
            if self.impl == 'bucketed':
                out = bucketed_group_attention(q, k, v, assignment, key_index,
                                               self.effective_bucket_size(num_tokens), self.check_bucket_bound)
            else:
                out = masked_dense_group_attention(q, k, v, assignment, key_index)
            out = out.view(batch, heads, num_tokens, dims)
        return self.proj(merge_heads(out))

    def group_and_select(self, q: torch.Tensor, k: torch.Tensor, hw: Tuple[int, int]):
        """Assignment (B*h, N) and selected key indices (B*h, G, k) for per-head queries and keys (B*h, N, d)."""
        rows, num_tokens, dims = q.shape
        batch, heads = rows // self.num_heads, self.num_heads
        groups, topk = self.effective_groups(num_tokens), self.effective_topk(num_tokens)
        if self.share_groups:
            full = q.view(batch, heads, num_tokens, dims).transpose(1, 2).reshape(batch, num_tokens, heads * dims)
            assignment, centroids, _ = kmeans_group_queries(full, hw, groups, self.kmeans_iters, self.cosine)
            # a head's centroid is the head's slice of the full centroid (the mean of the members' slices)
            assignment = assignment.repeat_interleave(heads, dim=0)
            centroids = centroids.view(batch, groups, heads, dims).transpose(1, 2).reshape(rows, groups, dims)
        else:
            assignment, centroids, _ = kmeans_group_queries(q, hw, groups, self.kmeans_iters, self.cosine)
        key_index = select_keys(centroids, k, topk)
        if self.record_grouping:
            self.last_grouping = dict(assignment=assignment.view(batch, heads, num_tokens),
                                      key_index=key_index.view(batch, heads, groups, topk), hw=tuple(hw))
        return assignment, key_index

    # -- complexity
    def analytic_flops(self, batch: int, num_tokens: int) -> int:
        """Multiply-adds of the attention core (everything but the QKV and output projections).

        Global: 2 N^2 C. Dynamic groups: 2 N k C for the attention of every query over its k keys, plus
        (T + 1) assignments and (T + 1) one-hot-GEMM centroid updates at N G C each, plus the centroid-key scores
        at N G C, plus N C for the grid-pooled initial centroids (C over all heads; C-dim clustering when
        groups are shared: the same cost for assignments and updates, and scoring stays per head). Top-k, sort,
        gather and scatter do no multiply-adds and count 0. The updates count as one-hot GEMMs on every device,
        also on the CPU, where they run as an ``index_add_`` of N C adds, so that the figure is the model's.
        """
        channels = self.embed_dims
        if self.is_global(num_tokens):
            return batch * 2 * num_tokens * num_tokens * channels
        groups, topk = self.effective_groups(num_tokens), self.effective_topk(num_tokens)
        clustering = ((self.kmeans_iters + 1) * num_tokens * groups * channels + num_tokens * channels
                      + self._centroid_update_macs(num_tokens))
        scoring = num_tokens * groups * channels
        return batch * (clustering + scoring + 2 * num_tokens * topk * channels)

    def _centroid_update_macs(self, num_tokens: int) -> int:
        # T + 1 updates, and with `cosine` the extra one that turns normalised-query clusters into raw-query means
        updates = self.kmeans_iters + 1 + int(self.cosine)
        return updates * num_tokens * self.effective_groups(num_tokens) * self.embed_dims

    def traced_flops(self, batch: int, num_tokens: int, device: torch.device = torch.device('cpu')) -> int:
        """What mmengine's FlopAnalyzer (with the SDPA handle of ``mixformer_mm.utils.flops``) prices in the
        attention core on ``device``: the matrix products and the pooling (not the centroid updates where they are
        an ``index_add_``), and the bucketed SDPA including its padded slots."""
        if self.is_global(num_tokens):
            return self.analytic_flops(batch, num_tokens)
        channels = self.embed_dims
        groups, topk = self.effective_groups(num_tokens), self.effective_topk(num_tokens)
        traced = self.analytic_flops(batch, num_tokens) - batch * 2 * num_tokens * topk * channels
        if _updates_by_index_add(device):
            traced -= batch * self._centroid_update_macs(num_tokens)
        if self.impl == 'bucketed':
            size = self.effective_bucket_size(num_tokens)
            query_slots = num_buckets_bound(num_tokens, groups, size) * size
            return traced + batch * 2 * query_slots * topk * channels
        return traced + batch * 2 * num_tokens * num_tokens * channels  # masked dense: every query, all N keys

    def untraced_flops(self, x: torch.Tensor, hw: Tuple[int, int]) -> int:
        """Analytic minus traced cost of a forward on ``x`` (called by ``mixformer_mm.utils.flops`` while it counts).

        The tracer sees the multiply-adds of the assignments and the scoring (they are GEMMs), those of the
        centroid updates only where they are one-hot GEMMs (not on the CPU), and nothing of top-k, sort, gather
        and scatter, which do none. It prices the bucketed SDPA at its static padded size (ceil(N/S) + G buckets of
        S query slots), whereas the model's cost is that of the N real queries. The difference is reported here
        so that the total is the analytic cost.
        """
        batch, num_tokens, _ = x.shape
        return self.analytic_flops(batch, num_tokens) - self.traced_flops(batch, num_tokens, x.device)

    def extra_repr(self) -> str:
        auto = f', auto_group_size={self.auto_group_size}' if self.auto_group_size else ''
        return (f'heads={self.num_heads}, groups={self.groups}, topk={self.topk}, kmeans_iters={self.kmeans_iters}, '
                f'bucket_size={self.bucket_size}, impl={self.impl!r}, share_groups={self.share_groups}, '
                f'cosine={self.cosine}{auto}')
