"""GPU checks of the four backbones at their T-sized paper archs (run on a CUDA machine; CI has none, so they skip
there): CPU parity in fp32 and fp64, an AMP training step at detection size, with_cp."""
import pytest
import torch

from mixformer_mm.models.backbones import DGT, GLNet, GroupMixFormer, MAFormer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')

BACKBONES = {
    'groupmixformer-t': lambda **kw: GroupMixFormer(arch='t', **kw),
    'glnet-4g': lambda **kw: GLNet(arch='4g', **kw),
    'glnet-stl': lambda **kw: GLNet(arch='stl', **kw),
    'maformer-s': lambda **kw: MAFormer(arch='s', **kw),
    'dgt-t': lambda **kw: DGT(arch='t', **kw),
}
# DGT's k-means assignments and top-k key choices are discrete: a 1e-6 difference between the CPU's and the GPU's
# fp32 sums can move one token to another group, so its parity is checked in fp64 only.
CONTINUOUS = [name for name in BACKBONES if not name.startswith('dgt')]


@pytest.fixture
def no_tf32():
    # cuDNN convolutions default to TF32 on Ampere and newer (about 1e-3 relative error); compare true fp32.
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _cpu_and_cuda_outputs(name, dtype, size=(224, 224)):
    torch.manual_seed(0)
    model = BACKBONES[name]().eval().to(dtype)
    x = torch.randn(2, 3, *size, dtype=dtype)
    with torch.no_grad():
        cpu = model(x)
        gpu = model.cuda()(x.cuda())
    return cpu, gpu


@pytest.mark.parametrize('name', CONTINUOUS)
def test_cuda_matches_cpu_float32(name, no_tf32):
    for a, b in zip(*_cpu_and_cuda_outputs(name, torch.float32)):
        assert (a - b.cpu()).abs().max().item() <= 1e-4 * max(1.0, a.abs().max().item())


# PyTorch's CUDA Hardswish scales by 1/6 rounded to fp32 even in fp64 (relative error 3e-8): on an H100 with torch
# 2.11 GroupMixFormer's stem activation alone differed by 8.6e-8 from the CPU's, and its outputs by 9.0e-8 (at most
# 2.8 in size). The other backbones have no Hardswish and agree to 1e-10.
FP64_TOLERANCE = {'groupmixformer-t': 1e-6}


@pytest.mark.parametrize('name', list(BACKBONES))
def test_cuda_matches_cpu_float64(name):
    # an odd size, so that the padded paths (windows, groups, pooled slots) run on the GPU too
    tolerance = FP64_TOLERANCE.get(name, 1e-10)
    for a, b in zip(*_cpu_and_cuda_outputs(name, torch.float64, size=(223, 257))):
        assert (a - b.cpu()).abs().max().item() <= tolerance * max(1.0, a.abs().max().item())


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('name', list(BACKBONES))
def test_amp_training_step_at_detection_size(name, dtype):
    torch.manual_seed(0)
    model = BACKBONES[name](drop_path_rate=0.1).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler('cuda', enabled=dtype == torch.float16)
    x = torch.randn(2, 3, 800, 1333, device='cuda')
    # An output LayerNorm runs in fp32 under autocast (GLNet, MAFormer, DGT); GroupMixFormer's outputs have none
    # and stay in the autocast dtype.
    output_dtypes = (dtype, ) if name.startswith('groupmixformer') else (dtype, torch.float32)
    # fp16: GradScaler starts at scale 65536 and skips the steps whose scaled gradients overflow, lowering the
    # scale; it must settle within a few steps and then take a step with finite gradients.
    for _ in range(8):
        optimizer.zero_grad()
        with torch.autocast('cuda', dtype=dtype):
            outs = model(x)
            loss = sum(o.float().square().mean() for o in outs)
        assert all(o.dtype in output_dtypes and torch.isfinite(o).all() for o in outs)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        finite = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        scaler.step(optimizer)
        scaler.update()
        if finite:
            break
    assert finite and torch.isfinite(loss)


@pytest.mark.parametrize('name', list(BACKBONES))
def test_with_cp_on_cuda_same_outputs_and_gradients(name):
    torch.manual_seed(0)
    plain = BACKBONES[name](drop_path_rate=0.1).cuda().train()
    checkpointed = BACKBONES[name](drop_path_rate=0.1, with_cp=True).cuda().train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 256, 320, device='cuda')
    outputs, grads = [], []
    for model in (plain, checkpointed):
        # the same DropPath masks in both: the recomputation under with_cp must replay them, not draw new ones
        torch.manual_seed(1)
        outs = model(x)
        sum(o.square().mean() for o in outs).backward()
        outputs.append([o.detach() for o in outs])
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*outputs):
        assert (a - b).abs().max().item() <= 1e-5 * max(1.0, a.abs().max().item())
    # cuDNN's reductions are not deterministic, and some gradients are pure rounding noise (the stem convs'
    # biases precede a BatchNorm, so their true gradient is zero): compare against the largest gradient.
    scale = max(g.abs().max().item() for g in grads[0])
    for a, b in zip(*grads):
        assert (a - b).abs().max().item() <= 1e-5 * scale
    for (key, a), b in zip(plain.state_dict().items(), checkpointed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), key
