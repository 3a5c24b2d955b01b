"""The four backbones' forward compiles as ONE graph (no graph breaks) under torch.compile, in training and in eval.

``fullgraph=True`` makes Dynamo raise on the first graph break. The eager backend keeps most checks fast while
tracing exactly what inductor would be given; what only inductor's lowering can reject (MAFormer's 5-D window
attention once failed there) is checked with inductor itself, at 224x224 where windows, slot grids and groups
have their real sizes, in eval (inductor's C++ kernels take about half a minute per tiny model to build).
"""
import pytest
import torch

from mixformer_mm.models.backbones import DGT, GLNet, GroupMixFormer, MAFormer
from tests.test_dgt import TINY as DGT_TINY
from tests.test_glnet import TINY as GLNET_TINY
from tests.test_glnet import TINY_STL as GLNET_TINY_STL
from tests.test_groupmixformer import TINY as GROUPMIXFORMER_TINY
from tests.test_maformer import TINY_KW as MAFORMER_TINY_KW

BACKBONES = {
    'groupmixformer': lambda: GroupMixFormer(arch=GROUPMIXFORMER_TINY, drop_path_rate=0.1),
    'glnet': lambda: GLNet(arch=GLNET_TINY, drop_path_rate=0.1),
    'glnet-stl': lambda: GLNet(arch=GLNET_TINY_STL, drop_path_rate=0.1),
    'maformer': lambda: MAFormer(**MAFORMER_TINY_KW, drop_path_rate=0.1),
    'dgt': lambda: DGT(arch=DGT_TINY, drop_path_rate=0.1),
}


@pytest.mark.parametrize('name', list(BACKBONES))
def test_forward_is_one_graph_and_matches_eager(name, one_thread):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = BACKBONES[name]()
    compiled = torch.compile(model, backend='eager', fullgraph=True)

    model.train()
    outs = compiled(torch.randn(2, 3, 64, 64))
    sum(o.square().mean() for o in outs).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)

    model.eval()
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        expected, got = model(x), compiled(x)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', list(BACKBONES))
def test_inductor_compiles_at_real_window_size_and_matches_eager(name, one_thread):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = BACKBONES[name]().eval()
    if name == 'maformer':  # its global grids are sized for the pre-training resolution
        model = MAFormer(**{**MAFORMER_TINY_KW, 'pretrain_img_size': 224}).eval()
    compiled = torch.compile(model, backend='inductor', fullgraph=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected, got = model(x), compiled(x)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)
    torch._dynamo.reset()
