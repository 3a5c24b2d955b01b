"""The launch and traffic counter (mixformer_mm.utils.launch_count, tools/analysis_tools/count_launches.py) on toys
whose counts are known exactly."""
import pytest
import torch
from torch import nn

from mixformer_mm.utils.launch_count import count_compiled, count_eager, count_model_eager


class ScaleReluShift(nn.Module):
    """mul, relu, add; the view and transpose in between launch nothing."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(4, 8))

    def forward(self, x):
        y = (x * self.weight).relu()
        return y.view(-1).transpose(0, 0).reshape(4, 8) + 1


def test_eager_eval_counts_ops_and_bytes_but_not_views():
    count = count_model_eager(ScaleReluShift(), torch.randn(4, 8), 'eval')
    assert count.ops == 3
    assert dict(count.by_op) == {'mul': 1, 'relu': 1, 'add': 1}
    assert count.bytes_written == 3 * 4 * 8 * 4  # three float32 (4, 8) outputs


def test_eager_train_step_counts_the_backward():
    count = count_model_eager(ScaleReluShift(), torch.randn(4, 8), 'train')
    # forward: mul, relu, add, and the loss's mean; backward: ones_like (the loss's gradient), div (mean's
    # backward; its expand is a view), threshold_backward (relu's) and mul (the weight's gradient, x * grad).
    # The add's and the views' backwards pass the gradient through.
    assert dict(count.by_op) == {'mul': 2, 'relu': 1, 'add': 1, 'mean': 1, 'ones_like': 1, 'div': 1,
                                 'threshold_backward': 1}
    assert count.ops == 8
    assert count.bytes_written == 6 * 128 + 2 * 4  # six (4, 8) float32 tensors and two scalars


def test_in_place_ops_count_what_they_write_and_allocations_and_host_queries_do_not_count():

    def step():
        buffer = torch.empty(16)  # uninitialised: no kernel
        torch.promote_types(buffer.dtype, torch.float64)  # answered on the host
        buffer.fill_(1.0)
        buffer.mul_(2.0)
        return buffer

    count = count_eager(step)
    assert dict(count.by_op) == {'fill_': 1, 'mul_': 1}
    assert count.bytes_written == 2 * 16 * 4


def test_warmup_steps_are_not_counted():
    calls = []

    class CountsCalls(nn.Module):

        def forward(self, x):
            calls.append(1)
            return x + 1

    count = count_model_eager(CountsCalls(), torch.randn(2), 'eval', warmup=2)
    assert len(calls) == 3 and count.ops == 1


def test_bad_mode_is_named():
    with pytest.raises(ValueError, match="'eval' or 'train'"):
        count_model_eager(ScaleReluShift(), torch.randn(4, 8), 'infer')


class PointwiseWithBreak(nn.Module):
    """Two chains of pointwise ops split by a graph break: inductor fuses each chain into one kernel."""

    def forward(self, x):
        x = x.sin().cos()
        torch._dynamo.graph_break()
        return x * 2


class PointwiseChain(nn.Module):

    def forward(self, x):
        return (x.sin().cos() * 2).relu()


def test_compiled_counts_kernels_and_graph_breaks(one_thread):
    x = torch.randn(4, 8)
    fused = count_compiled(PointwiseChain(), x, 'eval')
    assert (fused.kernels, fused.graph_breaks, fused.graphs) == (1, 0, 1)

    broken = count_compiled(PointwiseWithBreak(), x, 'eval')
    assert (broken.kernels, broken.graph_breaks, broken.graphs) == (2, 1, 2)
    assert 'graph_break' in broken.break_reasons[0]

    # training: one forward and one backward kernel per graph
    trained = count_compiled(PointwiseWithBreak(), x.clone().requires_grad_(), 'train')
    assert (trained.kernels, trained.graph_breaks, trained.graphs) == (4, 1, 2)


def _load_tool(name):
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), f'tools/analysis_tools/{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_count_launches_tool_reports_ratios_to_the_reference_and_writes_csv(tmp_path, one_thread, capsys):
    import csv
    tool = _load_tool('count_launches')
    out = tmp_path / 'counts.csv'
    rows = tool.main(['groupmixformer-m', '--peers', 'swin-t', '--batch-size', '1', '--shape', '64', '--csv',
                      str(out)])
    ours, swin = rows
    names = (ours['model'], ours['reference'], swin['model'], swin['reference'])
    assert names == ('groupmixformer-m', 'swin-t', 'swin-t', '')
    assert ours['x_eval_ops'] == round(ours['eval_ops'] / swin['eval_ops'], 2)
    assert ours['x_train_ops'] == round(ours['train_ops'] / swin['train_ops'], 2)
    # the deployed forward is compared with the peer's eval forward; BatchNorms fold, so it launches fewer ops
    assert ours['deploy_eval_ops'] < ours['eval_ops']
    assert ours['x_deploy_eval_ops'] == round(ours['deploy_eval_ops'] / swin['eval_ops'], 2)
    assert swin['deploy_eval_ops'] is None and swin['x_eval_ops'] is None  # no deploy form; no ratio to itself
    # eager counts are exact: a second count of the same model is the same
    again = tool.count_target('groupmixformer-m', 1, (64, 64))
    assert again.eval_ops == ours['eval_ops'] and again.train_ops == ours['train_ops']
    with open(out) as f:
        written = list(csv.DictReader(f))
    assert [r['model'] for r in written] == ['groupmixformer-m', 'swin-t']
    assert '| groupmixformer-m |' in capsys.readouterr().out

    with pytest.raises(ValueError, match='unknown model'):
        tool.main(['resnet-50'])
