"""The backbone battery shared by tests/test_<backbone>.py: checks every backbone of the common interface
(four stages at strides 4..32, frozen_stages, norm_eval, with_cp) must pass, run on a model (or a model factory)
that the test builds with its own tiny arch."""
import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

DETECTION_SIZE = (800, 1333)
# stride-4..32 maps of an 800x1333 image (rounded up: the official padded downsampling)
DETECTION_HW = [(200, 334), (100, 167), (50, 84), (25, 42)]


def square_loss(outs):
    # squared, so that gradients reach the layers under an output LayerNorm (whose plain mean is constant)
    return sum(o.square().mean() for o in outs)


def randomise_bn_statistics(model, seed=0):
    """Non-trivial running statistics, so that a BatchNorm applied (or not) in eval mode shows in the output."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


def strided_hw(size, round_up=True):
    """(height, width) of the stride-4, 8, 16 and 32 maps of an image of `size`."""
    h, w = size
    if round_up:
        return [(-(-h // s), -(-w // s)) for s in (4, 8, 16, 32)]
    return [(h // s, w // s) for s in (4, 8, 16, 32)]


def check_outputs(model, size, channels, expected_hw):
    """In eval mode, one image of `size` gives one finite map per entry of `channels`, of those channels and of
    the (height, width) in `expected_hw`."""
    model.eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert len(outs) == len(channels) == len(expected_hw)
    for out, c, hw in zip(outs, channels, expected_hw):
        assert out.shape == (1, c, *hw)
        assert torch.isfinite(out).all()
    return outs


def parameters_without_gradient(model):
    return [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]


def check_gradients_reach_every_parameter(model, size=(64, 64)):
    model.train()
    square_loss(model(torch.randn(2, 3, *size))).backward()
    missing = parameters_without_gradient(model)
    assert not missing


def check_frozen_stages(model, frozen_stages, output_norm_prefix=None, lr=0.1):
    """One training step with `frozen_stages`: the stem, the first `frozen_stages` stages (and the output norms
    after them, keys `output_norm_prefix.format(i)`) keep their weights and BN statistics, stay in eval mode and need
    no gradient; the stages after them train, and the first of those changes."""
    model.init_weights()
    model.train()
    before = copy.deepcopy(model.state_dict())
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert bool(trainable) == (frozen_stages < 4)
    outs = model(torch.randn(2, 3, 64, 64))  # a train-mode forward: unfrozen BN statistics move
    if trainable:
        optimizer = torch.optim.SGD(trainable, lr=lr)
        square_loss(outs).backward()
        optimizer.step()
    after = model.state_dict()
    frozen_prefixes = ('stem.', ) + tuple(f'stages.{i}.' for i in range(frozen_stages))
    if output_norm_prefix is not None:
        frozen_prefixes += tuple(output_norm_prefix.format(i) for i in range(frozen_stages))
    for key, value in after.items():
        if key.startswith(frozen_prefixes):
            assert torch.equal(value, before[key]), f'{key} changed although frozen'
    for module in [model.stem] + list(model.stages)[:frozen_stages] + list(model.frozen_modules()):
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    assert all(m.training for m in list(model.stages)[frozen_stages:])
    if frozen_stages < 4:
        assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith(f'stages.{frozen_stages}.'))


def check_norm_eval_keeps_bn_statistics(model):
    """With norm_eval, a train-mode forward leaves every BatchNorm in eval mode with its running statistics, while
    its affine parameters still train. Returns the BatchNorms."""
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)
    stats = [(m.running_mean.clone(), m.running_var.clone()) for m in bns]
    model(torch.randn(2, 3, 64, 64))
    assert all(torch.equal(mean, m.running_mean) and torch.equal(var, m.running_var)
               for (mean, var), m in zip(stats, bns))
    assert all(p.requires_grad for m in bns for p in m.parameters())
    return bns


def check_with_cp_matches_plain(make_model, size=(64, 64)):
    """`make_model(with_cp)` with activation checkpointing gives the outputs, the gradients and the state (BN
    running statistics updated once, not twice by the recomputation) of the same model without it."""
    torch.manual_seed(0)
    plain = make_model(with_cp=False).train()
    checkpointed = make_model(with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, *size)
    results = []
    for model in (plain, checkpointed):
        torch.manual_seed(1)  # same drop-path masks
        outs = model(x)
        square_loss(outs).backward()
        results.append((outs, {n: p.grad.clone() for n, p in model.named_parameters()}, model.state_dict()))
    (outs_a, grads_a, state_a), (outs_b, grads_b, state_b) = results
    assert len(outs_a) == len(outs_b)
    for a, b in zip(outs_a, outs_b):
        assert torch.allclose(a, b, atol=1e-6)
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-6, rtol=1e-5), name
    for key in state_a:
        assert torch.allclose(state_a[key].float(), state_b[key].float(), atol=1e-7), key


def check_bf16_autocast_trains(model, size=(64, 64)):
    """A train-mode forward under CPU bf16 autocast gives finite outputs and a backward gives finite gradients.
    Returns the outputs, for the caller's checks of their dtypes."""
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(torch.randn(2, 3, *size))
    assert all(torch.isfinite(o.float()).all() for o in outs)
    square_loss([o.float() for o in outs]).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    return outs


def check_bad_inputs_are_named(model):
    """Inputs the common interface refuses (smaller than one stride-32 cell, not RGB) raise errors that say so."""
    model.eval()
    with pytest.raises(ValueError, match=r'smaller than the 32x32'):
        model(torch.randn(1, 3, 24, 64))
    with pytest.raises(ValueError, match=r'3-channel input but got 1 channels'):
        model(torch.randn(1, 1, 64, 64))
