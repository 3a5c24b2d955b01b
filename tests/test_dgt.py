"""DGT and DG-Attention: equivalence of the implementations with a naive reference, degenerate cases, the static
bucket bound, linear cost and memory, the FLOP hook, and the backbone battery (variants, sizes, gradients,
freezing, checkpointing, autocast, loading, errors)."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from mixformer_mm.models.backbones import DGT
from mixformer_mm.models.layers import dynamic_group_attention as dga
from mixformer_mm.models.layers.dynamic_group_attention import (DGAttention, bucket_layout, bucketed_group_attention,
                                                                grid_shape, kmeans_group_queries,
                                                                masked_dense_group_attention, num_buckets_bound,
                                                                select_keys)
from mixformer_mm.utils.flops import count_flops
from tests.backbone_checks import (DETECTION_HW, DETECTION_SIZE, check_bad_inputs_are_named, check_bf16_autocast_trains,
                                   check_frozen_stages, check_gradients_reach_every_parameter,
                                   check_norm_eval_keeps_bn_statistics, check_outputs, check_with_cp_matches_plain,
                                   strided_hw)

TINY = dict(embed_dims=[16, 32, 32, 64], depths=[1, 2, 1, 1], num_heads=[2, 2, 4, 4], groups=[4, 3, 2, 1],
            topk=[8, 8, 4, None], mlp_ratios=[2, 2, 2, 2])
F64 = torch.float64


# --- an independent, loop-based reference of DG-Attention written from the spec -----------------------------------
def _reference_grid_centroids(points, hw, grid):
    """Adaptive average pooling written out: cell (i, j) averages rows floor(iH/gh)..ceil((i+1)H/gh)-1."""
    height, width = hw
    rows, cols = grid
    maps = points.T.reshape(-1, height, width)
    cells = []
    for i in range(rows):
        for j in range(cols):
            r0, r1 = (i * height) // rows, -(-((i + 1) * height) // rows)
            c0, c1 = (j * width) // cols, -(-((j + 1) * width) // cols)
            cells.append(maps[:, r0:r1, c0:c1].mean(dim=(1, 2)))
    return torch.stack(cells)


def _reference_kmeans(points, hw, groups, iters):
    centroids = _reference_grid_centroids(points, hw, grid_shape(groups, *hw))
    for _ in range(iters + 1):
        distance = ((points[:, None, :] - centroids[None]) ** 2).sum(-1)
        assignment = distance.argmin(1)
        for g in range(groups):
            members = points[assignment == g]
            if len(members):
                centroids[g] = members.mean(0)
    return assignment, centroids


def reference_dg_attention(x, module, hw):
    """Loops over images, heads, groups and queries: k-means, top-k by centroid score, softmax per query."""
    batch, num_tokens, channels = x.shape
    heads, dims = module.num_heads, module.head_dims
    groups, topk = module.effective_groups(num_tokens), module.effective_topk(num_tokens)
    qkv = F.linear(x, module.qkv.weight, module.qkv.bias).view(batch, num_tokens, 3, heads, dims)
    out = torch.zeros(batch, num_tokens, heads, dims, dtype=x.dtype)
    for b in range(batch):
        for h in range(heads):
            q, k, v = qkv[b, :, 0, h], qkv[b, :, 1, h], qkv[b, :, 2, h]
            assignment, centroids = _reference_kmeans(q.detach().clone(), hw, groups, module.kmeans_iters)
            for g in range(groups):
                selected = torch.argsort(centroids[g] @ k.detach().T, descending=True)[:topk]
                for i in torch.nonzero(assignment == g).flatten().tolist():
                    weights = torch.softmax(q[i] @ k[selected].T / math.sqrt(dims), dim=0)
                    out[b, i, h] = weights @ v[selected]
    return F.linear(out.reshape(batch, num_tokens, channels), module.proj.weight, module.proj.bias)


def _attention(groups, topk, bucket_size, impl='bucketed', heads=3, dims=48, seed=0, **kwargs):
    torch.manual_seed(seed)
    module = DGAttention(dims, heads, groups=groups, topk=topk, bucket_size=bucket_size, impl=impl, **kwargs)
    return module.to(F64)


def _output_and_input_grad(forward, x, seed=1):
    x = x.clone().requires_grad_(True)
    out = forward(x)
    weights = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(seed))
    grad, = torch.autograd.grad((out * weights).sum(), x)
    return out.detach(), grad


@pytest.mark.parametrize('bucket_size', [4, 7, 16])
@pytest.mark.parametrize('hw,groups,topk,iters', [((8, 8), 4, 10, 1), ((7, 9), 5, 13, 0), ((6, 10), 3, 7, 2)])
def test_bucketed_equals_masked_dense_equals_naive_loop_fp64(bucket_size, hw, groups, topk, iters):
    module = _attention(groups, topk, bucket_size, kmeans_iters=iters)
    module.check_bucket_bound = True
    module.record_grouping = True
    dense = copy.deepcopy(module)
    dense.impl = 'masked_dense'
    x = torch.randn(2, hw[0] * hw[1], 48, dtype=F64, generator=torch.Generator().manual_seed(2))
    out, grad = _output_and_input_grad(lambda t: module(t, hw), x)
    out_dense, grad_dense = _output_and_input_grad(lambda t: dense(t, hw), x)
    out_loop, grad_loop = _output_and_input_grad(lambda t: reference_dg_attention(t, module, hw), x)
    assert out.abs().max() > 0.1
    for other, other_grad in ((out_dense, grad_dense), (out_loop, grad_loop)):
        assert torch.allclose(out, other, atol=1e-12, rtol=0)
        assert torch.allclose(grad, other_grad, atol=1e-12, rtol=0)
    # unequal groups: buckets are partly filled, so the comparison exercises the padding
    assignment = module.last_grouping['assignment'].flatten(0, 1)
    counts = torch.stack([torch.bincount(a, minlength=groups) for a in assignment])
    assert (counts.max(1).values != counts.min(1).values).all()
    assert (counts % bucket_size != 0).any()


@pytest.mark.parametrize('bucket_size', [1, 4, 7, 16, 64])
def test_bucketed_core_equals_masked_dense_for_any_bucket_size(bucket_size):
    gen = torch.Generator().manual_seed(bucket_size)
    q, k, v = torch.randn(3, 6, 63, 8, dtype=F64, generator=gen).unbind(0)
    assignment = torch.multinomial(torch.tensor([0.4, 0.05, 0.3, 0.0, 0.25], dtype=F64), 6 * 63, replacement=True,
                                   generator=gen).view(6, 63)  # unequal groups, one empty
    key_index = torch.stack([torch.randperm(63, generator=gen)[:9] for _ in range(6 * 5)]).view(6, 5, 9)
    results = []
    for attend in (lambda *t: bucketed_group_attention(*t, assignment, key_index, bucket_size, check_bound=True),
                   lambda *t: masked_dense_group_attention(*t, assignment, key_index)):
        inputs = [t.clone().requires_grad_(True) for t in (q, k, v)]
        out = attend(*inputs)
        out.mul(torch.linspace(-1, 1, out.numel(), dtype=F64).view(out.shape)).sum().backward()
        results.append([out.detach()] + [t.grad for t in inputs])
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-13, rtol=0)


def test_bucket_size_is_capped_at_the_mean_group_size():
    module = DGAttention(32, 2, groups=64, topk=64, bucket_size=64)
    assert [module.effective_bucket_size(n) for n in (256, 3136, 66800)] == [4, 49, 64]


# --- degenerate cases -------------------------------------------------------------------------------------------
def _global_mhsa(module, x):
    batch, num_tokens, channels = x.shape
    q, k, v = F.linear(x, module.qkv.weight, module.qkv.bias).view(
        batch, num_tokens, 3, module.num_heads, module.head_dims).permute(2, 0, 3, 1, 4)
    attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(module.head_dims), dim=-1)
    return F.linear((attn @ v).transpose(1, 2).reshape(batch, num_tokens, channels), module.proj.weight,
                    module.proj.bias)


@pytest.mark.parametrize('groups,topk', [(1, 35), (1, None), (4, 35), (3, 100)])
def test_all_keys_is_exact_global_attention(groups, topk):
    module = _attention(groups, topk, 8)
    x = torch.randn(2, 35, 48, dtype=F64)
    assert module.is_global(35)
    assert torch.allclose(module(x, (5, 7)), _global_mhsa(module, x), atol=1e-13, rtol=0)


def test_one_group_with_all_keys_through_the_grouped_path_equals_global_attention():
    q, k, v = torch.randn(3, 4, 30, 8, dtype=F64).unbind(0)
    everything = torch.arange(30).expand(4, 1, 30)
    alone = torch.zeros(4, 30, dtype=torch.long)
    expected = F.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(bucketed_group_attention(q, k, v, alone, everything, 7), expected, atol=1e-13)
    assert torch.allclose(masked_dense_group_attention(q, k, v, alone, everything), expected, atol=1e-13)


def test_fewer_tokens_than_groups_uses_one_group_per_token():
    module = _attention(groups=16, topk=4, bucket_size=4)
    assert module.effective_groups(12) == 12 and not module.is_global(12)
    x = torch.randn(2, 12, 48, dtype=F64)
    out, grad = _output_and_input_grad(lambda t: module(t, (3, 4)), x)
    out_loop, grad_loop = _output_and_input_grad(lambda t: reference_dg_attention(t, module, (3, 4)), x)
    assert torch.allclose(out, out_loop, atol=1e-12) and torch.allclose(grad, grad_loop, atol=1e-12)


def test_empty_group_keeps_its_centroid_and_gets_no_bucket():
    # 4x4 map, 2x2 grid. The top-right cell's queries (+-1, 0) are taken by the left cells (1.5, 0) and
    # (-1.5, 0); the bottom-right cell is (0, 3). The top-right group is empty after the first assignment.
    points = torch.zeros(4, 4, 2, dtype=F64)
    points[:2, :2] = torch.tensor([1.5, 0.])
    points[2:, :2] = torch.tensor([-1.5, 0.])
    points[:2, 2:, 0] = torch.tensor([[1., -1.], [1., -1.]])
    points[2:, 2:] = torch.tensor([0., 3.])
    assignment, centroids, counts = kmeans_group_queries(points.view(1, 16, 2), (4, 4), 4, iters=2)
    assert counts.tolist() == [[6., 0., 6., 4.]]
    assert centroids[0, 1].tolist() == [0., 0.]  # the grid-pooled initial value, kept
    slot, bucket_group, max_buckets = bucket_layout(assignment, 4, bucket_size=4, check_bound=True)
    used = slot.div(4, rounding_mode='floor').unique()
    assert sorted(bucket_group[0, used].unique().tolist()) == [0, 2, 3]
    q, k, v = torch.randn(3, 1, 16, 2, dtype=F64).unbind(0)
    keys = select_keys(centroids, k, 5)
    assert torch.allclose(bucketed_group_attention(q, k, v, assignment, keys, 4),
                          masked_dense_group_attention(q, k, v, assignment, keys), atol=1e-13)


@pytest.mark.parametrize('index_add', [True, False], ids=['index_add', 'one_hot_gemm'])
def test_kmeans_matches_the_reference_and_centroids_are_member_means(index_add, monkeypatch):
    # the CPU sums members by index_add_, other devices by a one-hot GEMM: both are checked here, on the CPU
    monkeypatch.setattr(dga, '_updates_by_index_add', lambda device: index_add)
    points = torch.randn(3, 63, 6, dtype=F64)
    for iters in (0, 1, 3):
        assignment, centroids, counts = kmeans_group_queries(points, (7, 9), 8, iters=iters)
        for row in range(3):
            ref_assignment, ref_centroids = _reference_kmeans(points[row].clone(), (7, 9), 8, iters)
            assert torch.equal(assignment[row], ref_assignment)
            assert torch.allclose(centroids[row], ref_centroids, atol=1e-12)
            for g in range(8):
                if counts[row, g]:
                    assert torch.allclose(centroids[row, g], points[row][assignment[row] == g].mean(0))


def test_centroid_score_is_the_groups_mean_attention_logit():
    q, k = torch.randn(2, 1, 40, 4, dtype=F64).unbind(0)
    assignment, centroids, counts = kmeans_group_queries(q, (5, 8), 4)
    chosen = select_keys(centroids, k, 6)
    for g in range(4):
        if counts[0, g]:
            mean_logit = (q[0][assignment[0] == g] @ k[0].T).mean(0)
            assert set(chosen[0, g].tolist()) == set(mean_logit.topk(6).indices.tolist())


def test_grid_shape_is_the_most_square_fitting_factorisation():
    assert grid_shape(64, 56, 56) == (8, 8)
    assert grid_shape(16, 200, 334) == (4, 4)
    assert grid_shape(6, 2, 3) == (2, 3)
    assert grid_shape(8, 30, 10) == (4, 2)  # larger factor along the longer side
    assert grid_shape(16, 2, 40) == (2, 8)  # 4x4 would need 4 rows of a 2-row map
    assert grid_shape(7, 3, 3) == (1, 7)  # nothing fits: most square factorisation anyway


def test_unselected_keys_get_no_gradient():
    q, k, v = torch.randn(3, 2, 24, 4, dtype=F64).unbind(0)
    k.requires_grad_(True)
    v.requires_grad_(True)
    assignment, centroids, _ = kmeans_group_queries(q, (4, 6), 3)
    keys = select_keys(centroids, k, 5)
    bucketed_group_attention(q, k, v, assignment, keys, 4).sum().backward()
    selected = torch.zeros(2, 24, dtype=torch.bool)
    selected.scatter_(1, keys.flatten(1), True)
    assert (k.grad.abs().sum(-1)[~selected] == 0).all() and (v.grad.abs().sum(-1)[~selected] == 0).all()
    assert (v.grad.abs().sum(-1)[selected] > 0).all()


# --- bucket bound, determinism, linear cost and memory ---------------------------------------------------------
@pytest.mark.parametrize('bucket_size', [1, 3, 8])
def test_static_bucket_bound_holds_for_extreme_group_sizes(bucket_size):
    gen = torch.Generator().manual_seed(0)
    num_tokens, groups = 50, 6
    # groups of S + 1 queries waste the most slots: two buckets each, one nearly empty
    sizes = [bucket_size + 1] * (groups - 1) + [num_tokens - (groups - 1) * (bucket_size + 1)]
    worst = torch.repeat_interleave(torch.arange(groups), torch.tensor(sizes))
    layouts = [torch.zeros(1, num_tokens, dtype=torch.long),  # everything in one group
               torch.arange(num_tokens).remainder(groups).view(1, -1),  # balanced
               torch.randint(0, groups, (4, num_tokens), generator=gen),
               worst[torch.randperm(num_tokens, generator=gen)].view(1, -1)]
    bound = num_buckets_bound(num_tokens, groups, bucket_size)
    for assignment in layouts:
        slot, bucket_group, max_buckets = bucket_layout(assignment, groups, bucket_size, check_bound=True)
        assert max_buckets == bound == -(-num_tokens // bucket_size) + groups
        assert slot.max() < bound * bucket_size
        for row in range(assignment.shape[0]):
            assert len(slot[row].unique()) == num_tokens  # every query has its own slot
            buckets = slot[row].div(bucket_size, rounding_mode='floor')
            assert torch.equal(bucket_group[row, buckets], assignment[row])  # and sits in its group's bucket


def test_eval_forward_is_bit_identical():
    model = DGT(arch=TINY).eval()
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        first, second = model(x), model(x)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


class _LargestTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else [out]):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_cost_and_memory_are_linear_in_the_number_of_tokens():
    module = DGAttention(32, 2, groups=16, topk=32, bucket_size=32)
    # cost: exactly affine in N at fixed G and k (analytic count)
    flops = [module.analytic_flops(1, n) for n in (4096, 8192, 16384)]
    assert flops[2] - flops[1] == 2 * (flops[1] - flops[0])
    # memory: the largest tensor of a forward and backward grows like N; nothing of size N^2 or N*k*d appears
    largest = []
    for side in (32, 64, 128):
        x = torch.randn(1, side * side, 32, requires_grad=True)
        with _LargestTensor() as probe:
            module(x, (side, side)).sum().backward()
        largest.append(probe.largest)
        num_tokens = side * side
        assert probe.largest < 2 * num_tokens * module.head_dims * module.topk  # a per-query K gather would be
    assert largest[1] <= 4.4 * largest[0] and largest[2] <= 4.4 * largest[1]


def test_flop_hook_returns_the_analytic_formula():
    channels, heads, groups, topk, iters = 32, 2, 8, 16, 1
    module = DGAttention(channels, heads, groups=groups, topk=topk, kmeans_iters=iters, bucket_size=8).eval()
    hw = (12, 10)
    n = hw[0] * hw[1]
    core = (2 * iters + 3) * n * groups * channels + n * channels + 2 * n * topk * channels
    assert count_flops(module, (torch.randn(2, n, channels), hw)) == 2 * (4 * n * channels**2 + core)
    # the padded bucket slots the tracer priced are taken off; the centroid updates, an index_add_ on the CPU
    # that the tracer does not see, are added
    size = module.effective_bucket_size(n)
    padding = (num_buckets_bound(n, groups, size) * size - n) * 2 * topk * channels
    updates = (iters + 1) * n * groups * channels
    assert module.uncounted_flops() == 2 * (updates - padding)
    dense = copy.deepcopy(module)
    dense.impl = 'masked_dense'
    assert count_flops(dense, (torch.randn(2, n, channels), hw)) == 2 * (4 * n * channels**2 + core)
    global_module = DGAttention(channels, heads, groups=1, topk=None)
    assert count_flops(global_module, (torch.randn(1, n, channels), hw)) == 4 * n * channels**2 + 2 * n * n * channels


def test_auto_groups_follow_the_resolution():
    module = DGAttention(32, 2, groups=64, topk=64, auto_group_size=49, auto_max_groups=256)
    assert [module.effective_groups(n) for n in (3136, 784, 196, 30, 66800)] == [64, 16, 4, 1, 256]
    model = DGT(arch='t', groups='auto')
    fixed = DGT(arch='t')
    for (_, _, auto), (_, _, plain), n in zip(model.dg_attentions(), fixed.dg_attentions(),
                                              [3136] * 2 + [784] * 2 + [196] * 16 + [49] * 2):
        assert auto.effective_groups(n) == plain.effective_groups(n)  # the same groups at 224x224
        assert auto.is_global(n) == plain.is_global(n)
    assert model.dg_attentions()[0][2].effective_groups(200 * 334) == 256  # 800x1333, stage 1


# --- the backbone -----------------------------------------------------------------------------------------------
# Spec section 5.2: our analytic counts of the ImageNet models (backbone, final norm and the 1000-class head).
SPEC_PARAMS_M = {'t': 21.8, 's': 48.4, 'b': 85.5}


@pytest.mark.parametrize('arch', ['t', 's', 'b'])
def test_variant_param_counts_match_the_spec(arch):
    model = DGT(arch=arch, out_indices=(3, ))
    total = sum(p.numel() for p in model.parameters()) + model.embed_dims[-1] * 1000 + 1000
    assert total / 1e6 == pytest.approx(SPEC_PARAMS_M[arch], rel=0.01)
    assert model.embed_dims == [c * 2**i for i, c in enumerate([model.embed_dims[0]] * 4)]


@pytest.mark.parametrize('size', [(224, 224), (223, 225), (64, 96), (52, 68)])
def test_four_outputs_at_strides_4_to_32_any_size(size):
    check_outputs(DGT(arch=TINY), size, TINY['embed_dims'], strided_hw(size))


def test_default_variant_at_detection_size_800x1333_batch1():
    check_outputs(DGT(arch='t'), DETECTION_SIZE, [64, 128, 256, 512], DETECTION_HW)


def test_out_indices_and_output_norms():
    model = DGT(arch=TINY, out_indices=(1, 3)).eval()
    assert [o.shape[1] for o in model(torch.randn(2, 3, 64, 64))] == [32, 64]
    assert hasattr(model, 'norm1') and not hasattr(model, 'norm0')
    with pytest.raises(IndexError, match='out_indices'):
        DGT(arch=TINY, out_indices=(4, ))


def test_bucketed_backbone_equals_masked_dense_backbone_fp64():
    torch.manual_seed(0)
    model = DGT(arch=TINY, kmeans_iters=2).to(F64).eval()
    dense = DGT(arch=TINY, kmeans_iters=2, attn_impl='masked_dense').to(F64).eval()
    dense.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 52, 60, dtype=F64)
    with torch.no_grad():
        for a, b in zip(model(x), dense(x)):
            assert torch.allclose(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize('options', [dict(), dict(ffn_norm='BN', stem='cmt'), dict(share_groups=True),
                                     dict(cosine=True, kmeans_iters=0), dict(groups='auto')])
def test_gradients_reach_every_parameter(options):
    check_gradients_reach_every_parameter(DGT(arch=TINY, drop_path_rate=0.1, **options))


def test_shared_groups_give_every_head_the_same_assignment():
    module = DGAttention(32, 4, groups=4, topk=8, share_groups=True)
    module.record_grouping = True
    module(torch.randn(2, 48, 32), (6, 8))
    assignment = module.last_grouping['assignment']
    assert all(torch.equal(assignment[:, 0], assignment[:, h]) for h in range(1, 4))
    module.share_groups = False
    module(torch.randn(2, 48, 32), (6, 8))
    assignment = module.last_grouping['assignment']
    assert not all(torch.equal(assignment[:, 0], assignment[:, h]) for h in range(1, 4))


@pytest.mark.parametrize('frozen_stages', [0, 2, 4])
def test_frozen_stages_freeze_weights_and_bn_statistics(frozen_stages):
    model = DGT(arch=TINY, frozen_stages=frozen_stages, ffn_norm='BN')
    check_frozen_stages(model, frozen_stages, output_norm_prefix='norm{}.')


def test_norm_eval_keeps_bn_statistics():
    bns = check_norm_eval_keeps_bn_statistics(DGT(arch=TINY, norm_eval=True, ffn_norm='BN'))
    assert len(bns) > 1


def test_with_cp_same_outputs_gradients_and_bn_statistics():
    check_with_cp_matches_plain(lambda with_cp: DGT(arch=TINY, drop_path_rate=0.2, ffn_norm='BN', with_cp=with_cp))


def test_bf16_autocast_cpu_keeps_clustering_in_fp32():
    outs = check_bf16_autocast_trains(DGT(arch=TINY))
    assert all(o.dtype == torch.bfloat16 for o in outs)
    # the grouping of bf16 queries is the fp32 k-means of those queries
    module = DGAttention(32, 2, groups=4, topk=8)
    module.record_grouping = True
    x = torch.randn(2, 64, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = module(x, (8, 8))
        q = module.qkv(x)[..., :32]
    assert out.dtype == q.dtype == torch.bfloat16
    q = q.view(2, 64, 2, 16).transpose(1, 2).reshape(4, 64, 16)
    expected, _, _ = kmeans_group_queries(q.float(), (8, 8), 4)
    assert torch.equal(module.last_grouping['assignment'].flatten(0, 1), expected)


def test_pretrained_classification_backbone_loads_into_a_dense_model(tmp_path):
    classifier = DGT(arch=TINY, out_indices=(3, ))
    checkpoint = tmp_path / 'cls.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in classifier.state_dict().items()}}, checkpoint)
    dense = DGT(arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint), prefix='backbone.'))
    dense.init_weights()
    state = dense.state_dict()
    assert all(torch.equal(state[k], v) for k, v in classifier.state_dict().items())
    other = DGT(arch=dict(TINY, embed_dims=[32, 32, 32, 64]),
                init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint), prefix='backbone.'))
    with pytest.raises(KeyError, match='does not fit DGT'):
        other.init_weights()


def test_builds_from_every_codebase_registry():
    from mmdet.registry import MODELS as DET
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS as CLS
    from mmseg.registry import MODELS as SEG
    for scope, registry in (('mmpretrain', CLS), ('mmdet', DET), ('mmseg', SEG)):
        init_default_scope(scope)
        for name in ('DGT', 'mixformer_mm.DGT'):
            assert type(registry.build(dict(type=name, arch=TINY))) is DGT


# --- errors that name the problem -------------------------------------------------------------------------------
def test_bad_arguments_are_named():
    with pytest.raises(KeyError, match=r"unknown arch 'xl'.*'b'.*'s'.*'t'"):
        DGT(arch='xl')
    with pytest.raises(KeyError, match='lacks'):
        DGT(arch=dict(embed_dims=[16] * 4, depths=[1] * 4))
    with pytest.raises(ValueError, match=r"arch\['groups'\] needs 4 values"):
        DGT(arch=dict(TINY, groups=[4, 4]))
    with pytest.raises(ValueError, match='divisible by num_heads'):
        DGT(arch=dict(TINY, num_heads=[3, 2, 4, 4]))
    with pytest.raises(ValueError, match="groups must be 'fixed' or 'auto'"):
        DGT(arch=TINY, groups='dynamic')
    with pytest.raises(ValueError, match='attn_impl must be one of'):
        DGT(arch=TINY, attn_impl='flash')
    with pytest.raises(ValueError, match="stem must be 'conv' or 'cmt'"):
        DGT(arch=TINY, stem='patch')
    with pytest.raises(ValueError, match='need groups >= 1'):
        DGAttention(32, 2, groups=0)
    with pytest.raises(ValueError, match='do not form a 5x5 map'):
        DGAttention(32, 2)(torch.randn(1, 24, 32), (5, 5))


def test_bad_inputs_are_named():
    check_bad_inputs_are_named(DGT(arch=TINY))


class _OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket.__name__))
        return func(*args, **(kwargs or {}))


def test_bucketed_forward_has_one_attention_call_and_no_host_sync():
    module = DGAttention(32, 2, groups=8, topk=16, bucket_size=8)
    x = torch.randn(2, 120, 32)
    with _OpLog() as log:
        module(x, (10, 12))
    # .item(), int(tensor), data-dependent shapes (nonzero, masked_select) all go through these ops
    assert not {'_local_scalar_dense', 'nonzero', 'masked_select', 'unique_dim', '_unique2'} & set(log.ops)
    assert len([op for op in log.ops if 'scaled_dot_product' in op]) == 1
    module.check_bucket_bound = True  # the debugging check is the only place that syncs
    with _OpLog() as log:
        module(x, (10, 12))
    assert '_local_scalar_dense' in log.ops


# --- group visualisation ----------------------------------------------------------------------------------------
def _load_tool(relative_path):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vis_groups_on_a_demo_image(tmp_path, capsys):
    import cv2
    import numpy as np
    from PIL import Image, ImageDraw

    from mixformer_mm.datasets.demo_data import shape_polygon
    vis = _load_tool('tools/visualization/vis_groups.py')
    config = 'configs/demo/dgt-mini_demo_cls.py'

    canvas = Image.new('RGB', (64, 64), (40, 90, 40))
    ImageDraw.Draw(canvas).polygon(shape_polygon('cross', 32, 30, 22, 0.3), fill=(230, 220, 90))
    image = tmp_path / 'cross.png'
    canvas.save(image)
    from mixformer_mm.engine import load_config
    model = vis.build_model(load_config(config), 'none')
    checkpoint = tmp_path / 'demo.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)

    out = tmp_path / 'groups.png'
    vis.main([config, str(checkpoint), str(image), '--out', str(out), '--stage', '1', '--head', '1', '--group', '2'])
    printed = capsys.readouterr().out
    assert 'stage 1 block 0 head 1: 8x8 tokens, 4 groups' in printed and 'group 2' in printed
    result = cv2.imread(str(out))
    assert result.shape == (64, 128, 3)
    original, overlay = result[:, :64], result[:, 64:]
    assert np.abs(original.astype(int) - cv2.imread(str(image)).astype(int)).max() <= 2  # PNG, lossless
    # the selected keys are drawn as black squares with white rims, one per key (8x8-pixel tokens)
    attention = vis.find_attention(model.backbone, 1, 0)
    attention.record_grouping = True
    model.backbone(model.data_preprocessor(dict(inputs=[torch.from_numpy(
        cv2.imread(str(image)).transpose(2, 0, 1).copy())], data_samples=None), False)['inputs'])
    keys = attention.last_grouping['key_index'][0, 1, 2]
    assert len(keys) == 16
    for key in keys.tolist():
        cy, cx = (key // 8) * 8 + 4, (key % 8) * 8 + 4
        assert (overlay[cy, cx] == 0).all()

    with pytest.raises(ValueError, match='global attention'):
        vis.record_grouping(model, vis.find_attention(model.backbone, 2, 0), cv2.imread(str(image)))
    with pytest.raises(IndexError, match='--head 5: this block has 2 heads'):
        vis.find_attention(model.backbone, 1, 0, head=5)
    with pytest.raises(IndexError, match='no block 1 in stage 0'):
        vis.find_attention(model.backbone, 0, 1)
