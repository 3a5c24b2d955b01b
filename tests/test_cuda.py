"""GPU checks (run on a CUDA machine; CI has none, so they skip there): CPU parity, AMP, with_cp."""
import pytest
import torch

from mixformer_mm.models.backbones import GroupMixFormer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


@pytest.fixture
def no_tf32():
    # cuDNN convolutions default to TF32 on Ampere and newer (about 1e-3 relative error); compare true fp32.
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_cuda_matches_cpu_float32(no_tf32):
    torch.manual_seed(0)
    model = GroupMixFormer(arch='t').eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        cpu = model(x)
        gpu = model.cuda()(x.cuda())
    for a, b in zip(cpu, gpu):
        assert torch.allclose(a, b.cpu(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_amp_training_step_at_detection_size(dtype):
    torch.manual_seed(0)
    model = GroupMixFormer(arch='t', drop_path_rate=0.1).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler('cuda', enabled=dtype == torch.float16)
    x = torch.randn(2, 3, 800, 1333, device='cuda')
    # fp16: GradScaler starts at scale 65536 and skips the steps whose scaled gradients overflow, lowering the
    # scale; it must settle within a few steps and then take a step with finite gradients.
    for _ in range(8):
        optimizer.zero_grad()
        with torch.autocast('cuda', dtype=dtype):
            outs = model(x)
            loss = sum(o.float().square().mean() for o in outs)
        assert all(o.dtype == dtype and torch.isfinite(o).all() for o in outs)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        finite = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        scaler.step(optimizer)
        scaler.update()
        if finite:
            break
    assert finite and torch.isfinite(loss)


def test_with_cp_on_cuda_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = GroupMixFormer(arch='m', drop_path_rate=0.1).cuda().train()
    checkpointed = GroupMixFormer(arch='m', drop_path_rate=0.1, with_cp=True).cuda().train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 256, 320, device='cuda')
    grads = []
    for model in (plain, checkpointed):
        torch.manual_seed(1)
        outs = model(x)
        sum(o.square().mean() for o in outs).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    # cuDNN's reductions are not deterministic, and some gradients are pure rounding noise (the stem convs'
    # biases precede a BatchNorm, so their true gradient is zero): compare against the largest gradient.
    scale = max(g.abs().max().item() for g in grads[0])
    for a, b in zip(*grads):
        assert (a - b).abs().max().item() <= 1e-5 * scale
    for (key, a), b in zip(plain.state_dict().items(), checkpointed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), key
