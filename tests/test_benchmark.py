"""tools/analysis_tools/benchmark.py on tiny settings: what it measures and reports, not how fast anything is."""
import csv
import importlib.util
import os
import statistics

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, f'tools/analysis_tools/{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchmark = _load_tool('benchmark')

TINY = ['--shape', '32', '--warmup', '1', '--repeats', '3', '--threads', '1']


def _table(text):
    lines = [line for line in text.splitlines() if line.startswith('| ')]
    header = [c.strip() for c in lines[0].strip('|').split('|')]
    return [dict(zip(header, (c.strip() for c in line.strip('|').split('|')))) for line in lines[1:]]


def test_peers_are_measured_in_separate_processes_and_ratios_divide_their_img_per_s(tmp_path, capsys):
    out = tmp_path / 'bench.csv'
    rows = benchmark.main(['groupmixformer-m', '--peers', 'swin-t', '--mode', 'infer', *TINY, '--csv', str(out)])
    printed = capsys.readouterr().out
    by_target = {row.result.setting.target: row for row in rows}
    assert set(by_target) == {'groupmixformer-m', 'swin-t'}
    ours, peer = by_target['groupmixformer-m'], by_target['swin-t']
    assert ours.ratios['swin-t'] == pytest.approx(ours.result.img_per_s / peer.result.img_per_s)
    for row in rows:
        assert len(row.result.times_s) == 3 and row.result.img_per_s > 0
        # CPU peak memory excludes the imports and includes at least the fp32 weights.
        assert 4 * row.params_m < row.result.peak_mem_mib * 2**20 / 1e6 < 2000
        assert row.result.faults_per_step >= 0

    table = {r['model']: r for r in _table(printed.split('Growth')[0])}
    assert table['groupmixformer-m']['x Swin'] == f"{ours.ratios['swin-t']:.2f} (swin-t)"
    assert table['swin-t']['page faults/step'] == str(round(peer.result.faults_per_step))
    assert 'MFU %' not in table['swin-t']
    assert float(table['groupmixformer-m']['GFLOPs/img']) == pytest.approx(ours.gflops, abs=1e-3)
    with open(out) as f:
        written = list(csv.DictReader(f))
    assert [r['target'] for r in written] == ['groupmixformer-m', 'swin-t']
    assert len(written[0]['times_s'].split()) == 3
    assert float(written[1]['faults_per_step']) == round(peer.result.faults_per_step)


def test_page_faults_count_the_fresh_memory_each_timed_step_touches(monkeypatch):
    class FreshBuffer(torch.nn.Module):
        # 64 MiB is above glibc's largest mmap threshold, so every step maps, zeroes and unmaps it again.
        def forward(self, x):
            return torch.ones(16 * 2**20) + x.mean()

    monkeypatch.setattr(benchmark, 'build_target', lambda name: FreshBuffer())
    setting = benchmark.Setting(target='fresh', mode='infer', batch_size=1, shape=[8, 8], precision='fp32',
                                device='cpu', channels_last=False, compile=None, warmup=1, repeats=3, threads=1)
    result = benchmark.measure(setting)
    # 64 MiB is 16384 pages of 4 KiB, or 32 transparent huge pages of 2 MiB
    assert result.faults_per_step >= 32
    monkeypatch.setattr(benchmark, 'build_target', lambda name: torch.nn.Identity())
    assert benchmark.measure(setting).faults_per_step < result.faults_per_step / 4


def test_auto_peers_pick_the_swin_and_convnext_of_closest_flops():
    flops = {'swin-t': 4.5, 'swin-s': 8.7, 'swin-b': 15.4, 'convnext-t': 4.5, 'convnext-s': 8.7,
             'convnext-b': 15.4, 'glnet-9g': 9.6, 'dgt-t': 4.1}
    assert benchmark.closest_peers(flops, 'glnet-9g') == ['swin-s', 'convnext-s']
    assert benchmark.closest_peers(flops, 'dgt-t') == ['swin-t', 'convnext-t']


def test_config_targets_train_in_bf16_channels_last_and_growth_is_reported(capsys, one_thread):
    config = os.path.join(REPO, 'configs/demo/dgt-mini_demo_cls.py')
    rows = benchmark.main([config, '--peers', 'none', '--mode', 'train', '--precision', 'bf16', '--channels-last',
                           '--isolation', 'none', '--shape', '32', '64', '--warmup', '1', '--repeats', '2'])
    settings = [(r.result.setting.shape, r.result.setting.precision) for r in rows]
    assert settings == [([32, 32], 'bf16'), ([64, 64], 'bf16')]
    growth = _table(capsys.readouterr().out.split('Growth with input size:')[1])
    assert len(growth) == 1 and growth[0]['pixels x'] == '4.00'
    assert float(growth[0]['FLOPs x']) == pytest.approx(rows[1].gflops / rows[0].gflops, abs=0.01)


def test_rounds_take_turns_and_pool_their_timed_steps(capsys, one_thread):
    rows = benchmark.main(['groupmixformer-m', '--peers', 'swin-t', '--mode', 'infer', '--isolation', 'none',
                           '--rounds', '2', *TINY])
    order = [line.split()[1] for line in capsys.readouterr().err.splitlines() if line.startswith('measuring')]
    assert order == ['groupmixformer-m', 'swin-t', 'groupmixformer-m', 'swin-t']
    for row in rows:
        assert len(row.result.times_s) == 2 * 3
        assert row.result.img_per_s == pytest.approx(1 / statistics.median(row.result.times_s))
    ours, peer = rows
    assert ours.ratios['swin-t'] == pytest.approx(ours.result.img_per_s / peer.result.img_per_s)

    setting = rows[0].result.setting
    pooled = benchmark.pool_rounds([
        benchmark.Result(setting, 0, 0, 0, 100.0, 1, 'cpu', [0.1, 0.2, 0.4], faults_per_step=10.0),
        benchmark.Result(setting, 0, 0, 0, 300.0, 1, 'cpu', [0.3, 0.5], faults_per_step=40.0)])
    assert pooled.ms_per_iter == pytest.approx(300) and pooled.img_per_s == pytest.approx(1 / 0.3)
    assert pooled.peak_mem_mib == 300.0 and pooled.times_s == [0.1, 0.2, 0.4, 0.3, 0.5]
    assert pooled.faults_per_step == pytest.approx((3 * 10 + 2 * 40) / 5)  # per step, not per round
    on_gpu = benchmark.Result(setting, 0, 0, 0, 1.0, 1, 'H100', [0.1])
    assert benchmark.pool_rounds([on_gpu, on_gpu]).faults_per_step is None


def test_compile_takes_an_optional_mode_and_passes_it_to_torch_compile(monkeypatch, one_thread):
    assert benchmark.parse_args(['dgt-t']).compile is None
    assert benchmark.parse_args(['dgt-t', '--compile']).compile == 'default'
    assert benchmark.parse_args(['dgt-t', '--compile', 'reduce-overhead']).compile == 'reduce-overhead'
    with pytest.raises(SystemExit):
        benchmark.parse_args(['dgt-t', '--compile', 'fast'])

    modes = []

    def fake_compile(model, mode=None):
        modes.append(mode)
        return model

    monkeypatch.setattr(torch, 'compile', fake_compile)
    rows = benchmark.main(['groupmixformer-m', '--peers', 'none', '--mode', 'train', '--isolation', 'none',
                           '--compile', 'reduce-overhead', *TINY, '--shape', '64', '--batch-size', '2'])
    assert modes == ['reduce-overhead'] and rows[0].cells()['compile'] == 'reduce-overhead'


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a CUDA device')
def test_compiled_with_cuda_graphs_measures_inference_and_training():
    # Under CUDA graphs a step's outputs live in memory that the next replay reuses: both modes must get through
    # warm-up, recording and timed replays.
    rows = benchmark.main(['groupmixformer-m', '--peers', 'none', '--device', 'cuda', '--precision', 'bf16',
                           '--isolation', 'none', '--compile', 'reduce-overhead', '--shape', '64', '--batch-size',
                           '2', '--warmup', '3', '--repeats', '3'])
    assert [r.result.setting.mode for r in rows] == ['infer', 'train']
    assert all(r.result.img_per_s > 0 and r.result.peak_mem_mib > 0 for r in rows)


def test_bad_targets_are_named_before_anything_is_measured():
    with pytest.raises(ValueError, match="unknown model 'swim'"):
        benchmark.main(['swim-t'])
    with pytest.raises(ValueError, match="unknown arch 'xl' for dgt"):
        benchmark.main(['dgt-xl'])
    with pytest.raises(FileNotFoundError, match='does not exist'):
        benchmark.main(['configs/nope.py'])


def test_mfu_uses_the_device_peak_and_three_passes_for_training():
    assert benchmark.peak_tflops('NVIDIA H100 80GB HBM3', 'bf16', None) == 989.0
    assert benchmark.peak_tflops('AMD EPYC', 'bf16', None) is None
    assert benchmark.peak_tflops('AMD EPYC', 'bf16', 2.0) == 2.0
    # 4.5 GMACs at 1000 img/s = 9 TFLOP/s forward, 27 TFLOP/s training, of a 989 TFLOP/s peak.
    assert benchmark.mfu_pct(4.5e9, 1000, 'infer', 989.0) == pytest.approx(100 * 9 / 989)
    assert benchmark.mfu_pct(4.5e9, 1000, 'train', 989.0) == pytest.approx(100 * 27 / 989)


def test_profile_step_prints_the_operators_of_a_training_step(capsys, one_thread):
    profile_step = _load_tool('profile_step')
    total = profile_step.main(['groupmixformer-m', '--shape', '32', '--batch-size', '2', '--train',
                               '--ops', 'aten::convolution_backward', '--group-by-shape'])
    printed = capsys.readouterr().out
    rows = _table(printed)
    assert rows and all(r['operator'] == 'aten::convolution_backward' for r in rows)
    assert sum(float(r['self CPU ms']) for r in rows) <= total
    assert 'forward + backward, batch 2, 32x32, fp32, 1 threads' in printed


def test_profile_step_under_bf16_autocast_names_the_precision(capsys, one_thread):
    profile_step = _load_tool('profile_step')
    total = profile_step.main(['groupmixformer-m', '--shape', '32', '--batch-size', '1', '--precision', 'bf16',
                               '--rows', '3'])
    printed = capsys.readouterr().out
    assert total > 0 and len(_table(printed)) == 3
    assert 'forward (no grad), batch 1, 32x32, bf16, 1 threads' in printed


def test_saved_activations_charge_each_saved_tensor_once_to_the_module_that_saved_it():
    saved_activations = _load_tool('saved_activations')

    class Block(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.fc, self.act = torch.nn.Linear(8, 8), torch.nn.GELU()

        def forward(self, x):
            return self.act(self.fc(x))

    model = torch.nn.Sequential()
    model.blocks = torch.nn.ModuleList([Block(), Block()])
    model.forward = lambda x: model.blocks[1](model.blocks[0](x))
    x = torch.randn(3, 8)
    # Each Linear saves its input for the weight's gradient (its weight is a parameter, not counted); each GELU its
    # input. Every saved tensor is 3 x 8 fp32 = 96 bytes.
    assert saved_activations.saved_bytes_by_module(model, x) == {'Linear': 192, 'GELU': 192}
    assert saved_activations.saved_bytes_by_module(model, x, by='path') == {'blocks.*.fc': 192, 'blocks.*.act': 192}
    # the hooks are gone afterwards, and a second count gives the same again
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert saved_activations.saved_bytes_by_module(model, x) == {'Linear': 192, 'GELU': 192}


def test_saved_activations_tool_prints_a_table_per_target(capsys, one_thread):
    saved_activations = _load_tool('saved_activations')
    totals = saved_activations.main(['groupmixformer-m', 'swin-t', '--shape', '32', '--batch-size', '2'])
    printed = capsys.readouterr().out
    assert set(totals) == {'groupmixformer-m', 'swin-t'} and all(v > 0 for v in totals.values())
    assert printed.count('saved for the backward') == 2
    assert 0 < sum(float(r['share %']) for r in _table(printed.split('swin-t, training')[0])) <= 100.1
