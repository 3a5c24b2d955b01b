"""Speed and memory of backbones and models, with mmpretrain peers measured in the same run.

    # DGT-T against the Swin and ConvNeXt of closest FLOPs, at three resolutions, inference and training
    python tools/analysis_tools/benchmark.py dgt-t --shape 224 512 1024 --batch-size 1 --csv dgt.csv
    # every T/S-sized backbone, bf16 on a GPU, batch 128, model FLOP utilisation included
    python tools/analysis_tools/benchmark.py groupmixformer-t glnet-4g maformer-s dgt-t \\
        --device cuda --precision bf16 --batch-size 128
    # compiled, replaying CUDA graphs (plain --compile is torch.compile's default mode)
    python tools/analysis_tools/benchmark.py dgt-t --device cuda --precision bf16 --batch-size 128 \\
        --compile reduce-overhead
    # a whole config (classifier with head, or detector/segmentor up to the neck)
    python tools/analysis_tools/benchmark.py configs/glnet/glnet-4g_16xb128_in1k.py --peers none

Targets are backbone names ``<model>-<arch>`` (``groupmixformer``, ``glnet``, ``maformer``, ``dgt``, and the peers
``swin`` and ``convnext``; ``swin-t`` is mmpretrain's ``SwinTransformer(arch='tiny')``) or config files. Backbones
are measured alone, returning their last stage (``out_indices=(3,)``), all with ``drop_path_rate=0.1``.

``--peers auto`` (default) adds, for every backbone target, the mmpretrain Swin and ConvNeXt (T/S/B) whose FLOPs at
224x224 are closest to its own. Each ratio column divides a target's img/s by its peer's in the same setting.

Measured per setting: ``infer`` is eval mode under ``no_grad``; ``train`` is forward, backward (of the mean of the
outputs) and an AdamW step. Every measurement runs in a fresh process (``--isolation process``, the default), so
that memory peaks and caches of one model do not leak into the next; it does ``--warmup`` untimed iterations, then
``--repeats`` timed ones, and reports the median img/s and the spread as the interquartile range relative to the
median. ``--rounds R`` measures the models of a setting R times in turn and pools the timed steps of all rounds,
so that a drift in a shared machine's load is spread over all of them. Peak memory is
``torch.cuda.max_memory_allocated`` on CUDA, and on CPU the process's peak resident set minus its resident set
before the model was built (weights, optimizer state, activations and allocator caches); the highest of the rounds.
On CPU, ``page faults/step`` counts the process's minor page faults per timed step: memory the allocator gave back
to the kernel and took again, each page zeroed on first touch (glibc does this with large temporaries;
docs/speed_and_memory.md has the settings that stop it).
FLOPs are multiply-adds at batch 1 (``mixformer_mm.utils.flops``); MFU, on CUDA only, is
``2 * FLOPs * img/s`` (x3 for training) over the device's dense peak (``--peak-tflops`` or a known GPU's).
"""
import argparse
import csv
import itertools
import json
import math
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # get_flops, beside this file

WORKER_MARK = '@@benchmark-result@@'

# <model> -> (registered type, {arch name in <model>-<arch>: arch argument}); peers come from mmpretrain.
BACKBONES = {
    'groupmixformer': ('GroupMixFormer', {a: a for a in ('m', 't', 's', 'b', 'l')}),
    'glnet': ('GLNet', {a: a for a in ('stl', 'stl_paramslot', '4g', '9g', '16g')}),
    'maformer': ('MAFormer', {a: a for a in ('s', 'b', 'l')}),
    'dgt': ('DGT', {a: a for a in ('t', 's', 'b')}),
    'swin': ('mmpretrain.SwinTransformer', {'t': 'tiny', 's': 'small', 'b': 'base'}),
    'convnext': ('mmpretrain.ConvNeXt', {'t': 'tiny', 's': 'small', 'b': 'base'}),
}
PEER_FAMILIES = ('swin', 'convnext')
PEER_ARCHS = ('t', 's', 'b')

# Dense (no sparsity) peak tensor throughput in TFLOP/s, from the vendors' data sheets (SXM parts).
PEAK_TFLOPS = {
    'H100': {'bf16': 989.0, 'fp16': 989.0, 'fp32': 67.0},
    'H200': {'bf16': 989.0, 'fp16': 989.0, 'fp32': 67.0},
    'A100': {'bf16': 312.0, 'fp16': 312.0, 'fp32': 19.5},
}


PRECISIONS = ('fp32', 'bf16', 'fp16')
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')
CUDA_GRAPH_MODES = ('reduce-overhead', 'max-autotune')


def autocast_dtype(precision: str):
    """The autocast dtype of a ``--precision`` (``None``: fp32, autocast off)."""
    import torch
    return dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)[precision]


@dataclass
class Setting:
    target: str
    mode: str  # 'infer' | 'train'
    batch_size: int
    shape: List[int]  # [H, W]
    precision: str  # 'fp32' | 'bf16' | 'fp16'
    device: str
    channels_last: bool
    compile: Optional[str]  # None, or a torch.compile mode: 'default', 'reduce-overhead' (CUDA graphs), ...
    warmup: int
    repeats: int
    threads: Optional[int]


@dataclass
class Result:
    setting: Setting
    img_per_s: float
    spread_pct: float
    ms_per_iter: float
    peak_mem_mib: float
    threads: int
    device_name: str
    times_s: List[float] = field(default_factory=list)
    # Minor page faults per timed step, CPU only: memory that the allocator returned to the kernel and then took
    # back, zeroed page by page. A model whose largest temporaries make glibc trim its heap pays this every step.
    faults_per_step: Optional[float] = None


# ---------------------------------------------------------------------------------------------- building models
def parse_target(name: str):
    """``'dgt-t'`` -> ``('DGT', 't')``; a path ending in ``.py`` -> ``('config', path)``."""
    if name.endswith('.py'):
        if not osp.isfile(name):
            raise FileNotFoundError(f'benchmark: config file {name!r} does not exist')
        return 'config', name
    model, _, arch = name.partition('-')
    if model not in BACKBONES:
        raise ValueError(f'benchmark: unknown model {model!r} in {name!r}; expected <model>-<arch> with <model> one '
                         f'of {sorted(BACKBONES)}, or a config file')
    type_name, archs = BACKBONES[model]
    if arch not in archs:
        raise ValueError(f'benchmark: unknown arch {arch!r} for {model}; expected one of {sorted(archs)}')
    return type_name, archs[arch]


def build_target(name: str):
    import mmpretrain.models  # noqa: F401
    from mmengine.registry import MODELS

    import mixformer_mm  # noqa: F401  (registers our backbones)
    kind, arch = parse_target(name)
    if kind == 'config':
        # the classifier with its head, or a detector/segmentor up to the neck (get_flops --backbone-only)
        from get_flops import build_model

        from mixformer_mm.engine import load_config
        return build_model(load_config(arch), backbone_only=True)
    cfg = dict(type=kind, arch=arch, out_indices=(3, ), drop_path_rate=0.1)
    if kind == 'mmpretrain.ConvNeXt':
        cfg['gap_before_final_norm'] = False  # return the map, like the other backbones
    if kind == 'mmpretrain.SwinTransformer':
        cfg['pad_small_map'] = True  # any input size, as mmdet's and mmseg's Swin allow
    return MODELS.build(cfg)


def count_flops_and_params(name: str, shape) -> Dict[str, float]:
    import torch

    from mixformer_mm.utils.flops import count_flops, count_params
    model = build_target(name)
    model.eval()  # some backbones' train() returns None, so no chaining
    flops = count_flops(model, (torch.randn(1, 3, *shape), ))
    return dict(params=count_params(model), flops=flops)


# ---------------------------------------------------------------------------------------------- one measurement
def _outputs_mean(outputs):
    import torch
    if isinstance(outputs, torch.Tensor):
        return outputs.float().mean()
    return sum(_outputs_mean(o) for o in outputs)


def _status_mib(field_name: str) -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field_name + ':'):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f'benchmark: no {field_name} in /proc/self/status')


def _minor_faults() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets the peak resident set (VmHWM); getrusage's ru_maxrss cannot be reset and is
    # inherited from the parent process across exec.
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(setting: Setting) -> Result:
    import torch
    if setting.threads:
        torch.set_num_threads(setting.threads)
    device = torch.device(setting.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('benchmark: --device cuda was asked for, but torch sees no CUDA device')
    if setting.precision == 'fp16' and device.type == 'cpu':
        raise ValueError('benchmark: fp16 autocast is for CUDA; use bf16 on CPU')
    import mmpretrain.models  # noqa: F401

    import mixformer_mm  # noqa: F401  (imported before the baseline, so that it is not counted)
    if device.type == 'cpu':
        _reset_peak_rss()
        rss_before = _status_mib('VmRSS')
    torch.manual_seed(0)
    model = build_target(setting.target).to(device)
    memory_format = torch.channels_last if setting.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    inputs = torch.randn(setting.batch_size, 3, *setting.shape, device=device).to(memory_format=memory_format)
    training = setting.mode == 'train'
    model.train(training)
    dtype = autocast_dtype(setting.precision)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4) if training else None
    scaler = torch.amp.GradScaler('cuda', enabled=setting.precision == 'fp16') if training else None
    forward = torch.compile(model, mode=setting.compile) if setting.compile else model
    # With CUDA graphs, a step's outputs live in memory that the next replay overwrites; marking each step's start
    # tells the graph tree that the previous step's outputs are dead.
    cuda_graphs = setting.compile in CUDA_GRAPH_MODES and device.type == 'cuda'

    def step():
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            if not training:
                with torch.no_grad():
                    return forward(inputs)
            loss = _outputs_mean(forward(inputs))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    for _ in range(setting.warmup):
        step()
    sync()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    faults_before = _minor_faults()
    for _ in range(setting.repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    faults = _minor_faults() - faults_before
    if device.type == 'cuda':
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        device_name = torch.cuda.get_device_name(device)
    else:
        peak = _status_mib('VmHWM') - rss_before
        device_name = _cpu_name()
    faults_per_step = faults / setting.repeats if device.type == 'cpu' else None
    return summarise(setting, times, peak, torch.get_num_threads(), device_name, faults_per_step)


def summarise(setting: Setting, times: List[float], peak_mem_mib: float, threads: int, device_name: str,
              faults_per_step: Optional[float] = None) -> Result:
    """img/s from the median of the timed steps, and their spread as the IQR relative to that median."""
    median = statistics.median(times)
    return Result(setting=setting,
                  img_per_s=setting.batch_size / median,
                  spread_pct=100 * _iqr(times) / median,
                  ms_per_iter=1000 * median,
                  peak_mem_mib=peak_mem_mib,
                  threads=threads,
                  device_name=device_name,
                  times_s=times,
                  faults_per_step=faults_per_step)


def _iqr(values: List[float]) -> float:
    if len(values) < 2:
        return 0.0
    quartiles = statistics.quantiles(values, n=4, method='inclusive')
    return quartiles[2] - quartiles[0]


def pool_rounds(rounds: List[Result]) -> Result:
    """One result from several rounds of the same setting: the timed steps of all rounds pooled (median and IQR
    over them), the highest peak memory, and the page faults per step over all the steps."""
    first = rounds[0]
    times = [t for r in rounds for t in r.times_s]
    faults = None
    if all(r.faults_per_step is not None for r in rounds):
        faults = sum(r.faults_per_step * len(r.times_s) for r in rounds) / len(times)
    return summarise(first.setting, times, max(r.peak_mem_mib for r in rounds), first.threads, first.device_name,
                     faults)


def measure_in_subprocess(setting: Setting) -> Result:
    command = [sys.executable, osp.abspath(__file__), '--worker', json.dumps(asdict(setting))]
    done = subprocess.run(command, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith(WORKER_MARK):
            payload = json.loads(line[len(WORKER_MARK):])
            payload['setting'] = Setting(**payload['setting'])
            return Result(**payload)
    raise RuntimeError(f'benchmark: the measurement of {setting.target} ({setting.mode}, batch {setting.batch_size}, '
                       f'{setting.shape[0]}x{setting.shape[1]}, {setting.precision}) failed with exit code '
                       f'{done.returncode}:\n{done.stderr[-4000:]}')


def _worker(payload: str) -> None:
    result = measure(Setting(**json.loads(payload)))
    print(WORKER_MARK + json.dumps(asdict(result)), flush=True)


# ---------------------------------------------------------------------------------------------- peers and report
def closest_peers(flops_224: Dict[str, float], target: str) -> List[str]:
    """The Swin and the ConvNeXt whose FLOPs at 224x224 are closest to the target's (in ratio)."""
    chosen = []
    for family in PEER_FAMILIES:
        candidates = [f'{family}-{a}' for a in PEER_ARCHS]
        chosen.append(min(candidates, key=lambda p: abs(math.log(flops_224[p] / flops_224[target]))))
    return chosen


def peak_tflops(device_name: str, precision: str, override: Optional[float]) -> Optional[float]:
    if override:
        return override
    for gpu, table in PEAK_TFLOPS.items():
        if gpu in device_name:
            return table[precision]
    return None


def mfu_pct(macs_per_img: float, img_per_s: float, mode: str, peak: float) -> float:
    """Model FLOP utilisation: 2 FLOPs per multiply-add; training does the forward's work about three times."""
    passes = 3 if mode == 'train' else 1
    return 100 * 2 * macs_per_img * passes * img_per_s / (peak * 1e12)


def _rounded(value: Optional[float], digits: Optional[int] = None):
    return None if value is None else round(value, digits)


@dataclass
class Row:
    result: Result
    params_m: float
    gflops: float
    peers: List[str]
    ratios: Dict[str, float]
    mfu_pct: Optional[float]

    def cells(self) -> Dict[str, object]:
        s = self.result.setting
        cells = dict(target=s.target, mode=s.mode, batch=s.batch_size, input=f'{s.shape[0]}x{s.shape[1]}',
                     precision=s.precision, channels_last=s.channels_last, compile=s.compile, device=s.device,
                     device_name=self.result.device_name, threads=self.result.threads,
                     params_m=round(self.params_m, 3), gflops=round(self.gflops, 3),
                     img_per_s=round(self.result.img_per_s, 3), spread_pct=round(self.result.spread_pct, 1),
                     ms_per_iter=round(self.result.ms_per_iter, 2), peak_mem_mib=round(self.result.peak_mem_mib, 1),
                     faults_per_step=_rounded(self.result.faults_per_step),
                     mfu_pct=_rounded(self.mfu_pct, 1))
        for family in PEER_FAMILIES:
            peer = next((p for p in self.peers if p.startswith(family + '-')), None)
            ratio = self.ratios.get(peer) if peer else None
            cells[f'vs_{family}'] = f'{ratio:.2f} ({peer})' if ratio else ''
        return cells


MARKDOWN_COLUMNS = [('target', 'model'), ('mode', 'mode'), ('batch', 'batch'), ('input', 'input'),
                    ('precision', 'precision'), ('gflops', 'GFLOPs/img'), ('img_per_s', 'img/s'),
                    ('spread_pct', 'IQR %'), ('peak_mem_mib', 'peak MiB'), ('faults_per_step', 'page faults/step'),
                    ('vs_swin', 'x Swin'), ('vs_convnext', 'x ConvNeXt'), ('mfu_pct', 'MFU %')]
OPTIONAL_COLUMNS = ('faults_per_step', 'mfu_pct')  # shown when some row has a value (CPU runs, GPU runs)


def markdown(rows: List[Row]) -> str:
    cells = [row.cells() for row in rows]
    columns = [(key, title) for key, title in MARKDOWN_COLUMNS
               if key not in OPTIONAL_COLUMNS or any(c[key] is not None for c in cells)]
    lines = ['| ' + ' | '.join(title for _, title in columns) + ' |', '|' + '---|' * len(columns)]
    for row_cells in cells:
        lines.append('| ' + ' | '.join('' if row_cells[k] is None else str(row_cells[k]) for k, _ in columns) + ' |')
    return '\n'.join(lines)


def growth(rows: List[Row]) -> str:
    """Time per image from one resolution to the next, per model and setting, beside the growth in pixels."""
    lines = []
    groups: Dict[tuple, List[Row]] = {}
    for row in rows:
        s = row.result.setting
        groups.setdefault((s.target, s.mode, s.batch_size, s.precision), []).append(row)
    for (target, mode, batch, precision), members in groups.items():
        members.sort(key=lambda r: r.result.setting.shape[0] * r.result.setting.shape[1])
        for small, large in zip(members, members[1:]):
            a, b = small.result.setting.shape, large.result.setting.shape
            time_growth = small.result.img_per_s / large.result.img_per_s
            lines.append(f'| {target} | {mode} | {batch} | {precision} | {a[0]}x{a[1]} -> {b[0]}x{b[1]} | '
                         f'{b[0] * b[1] / (a[0] * a[1]):.2f} | {large.gflops / small.gflops:.2f} | '
                         f'{time_growth:.2f} |')
    if not lines:
        return ''
    header = ('| model | mode | batch | precision | inputs | pixels x | FLOPs x | time/img x |\n'
              '|---|---|---|---|---|---|---|---|')
    return header + '\n' + '\n'.join(lines)


def run(args) -> List[Row]:
    shapes = [[s, s] for s in args.shape] if not args.hw else [args.hw]
    targets = list(dict.fromkeys(args.targets))
    for target in targets:
        parse_target(target)  # fail on a bad name before measuring anything

    complexity: Dict[tuple, Dict[str, float]] = {}

    def cost(target, shape):
        key = (target, tuple(shape))
        if key not in complexity:
            complexity[key] = count_flops_and_params(target, shape)
        return complexity[key]

    peers_of: Dict[str, List[str]] = {t: [] for t in targets}
    if args.peers == ['auto']:
        flops_224 = {f'{f}-{a}': cost(f'{f}-{a}', (224, 224))['flops'] for f in PEER_FAMILIES for a in PEER_ARCHS}
        for target in targets:
            if not target.endswith('.py') and target.partition('-')[0] not in PEER_FAMILIES:
                flops_224[target] = cost(target, (224, 224))['flops']
                peers_of[target] = closest_peers(flops_224, target)
    elif args.peers != ['none']:
        for peer in args.peers:
            parse_target(peer)
        peers_of = {t: list(args.peers) for t in targets}
    everything = targets + [p for t in targets for p in peers_of[t] if p not in targets]
    everything = list(dict.fromkeys(everything))

    results: Dict[tuple, Result] = {}
    rows = []
    # Setting-major order: all models of one setting are measured back to back, so that a drift in the machine's
    # load between settings does not bias one model's ratios. With --rounds, the models of a setting take turns
    # that many times, so that a drift within the setting is shared by all of them too.
    for mode, batch, shape, precision in itertools.product(args.mode, args.batch_size, shapes, args.precision):
        measured: Dict[str, List[Result]] = {target: [] for target in everything}
        for round_index, target in itertools.product(range(args.rounds), everything):
            setting = Setting(target=target, mode=mode, batch_size=batch, shape=shape, precision=precision,
                              device=args.device, channels_last=args.channels_last, compile=args.compile,
                              warmup=args.warmup, repeats=args.repeats, threads=args.threads)
            turn = f' (round {round_index + 1} of {args.rounds})' if args.rounds > 1 else ''
            print(f'measuring {target} {mode} batch {batch} {shape[0]}x{shape[1]} {precision}{turn} ...',
                  file=sys.stderr, flush=True)
            result = measure_in_subprocess(setting) if args.isolation == 'process' else measure(setting)
            measured[target].append(result)
            # printed at once, so that a run cut short still leaves what it measured
            faults = '' if result.faults_per_step is None else f', {result.faults_per_step:.0f} page faults/step'
            print(f'  {result.img_per_s:.2f} img/s (IQR {result.spread_pct:.1f}%), peak {result.peak_mem_mib:.0f} '
                  f'MiB{faults}', file=sys.stderr, flush=True)
        for target, rounds in measured.items():
            results[(target, mode, batch, tuple(shape), precision)] = pool_rounds(rounds)
    # reported model by model
    order = {target: i for i, target in enumerate(everything)}
    for (target, mode, batch, shape, precision), result in sorted(results.items(), key=lambda kv: order[kv[0][0]]):
        flops = cost(target, shape)
        ratios = {p: result.img_per_s / results[(p, mode, batch, shape, precision)].img_per_s
                  for p in peers_of.get(target, [])}
        peak = peak_tflops(result.device_name, precision, args.peak_tflops) if args.device == 'cuda' else None
        mfu = mfu_pct(flops['flops'], result.img_per_s, mode, peak) if peak else None
        rows.append(Row(result, flops['params'] / 1e6, flops['flops'] / 1e9, peers_of.get(target, []), ratios, mfu))
    return rows


def write_csv(rows: List[Row], path: str) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].cells()) + ['times_s'])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row.cells(), 'times_s': ' '.join(f'{t:.6f}' for t in row.result.times_s)})


def describe_machine(rows: List[Row]) -> str:
    import torch
    first = rows[0].result
    return (f'{first.device_name}, {first.threads} threads, {os.cpu_count()} CPUs visible, torch {torch.__version__}, '
            f'Python {platform.python_version()}')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('targets', nargs='+', help='backbones (<model>-<arch>, e.g. dgt-t) or config files')
    parser.add_argument('--peers', nargs='+', default=['auto'],
                        help="'auto' (closest-FLOPs Swin and ConvNeXt), 'none', or backbone names")
    parser.add_argument('--mode', nargs='+', choices=['infer', 'train'], default=['infer', 'train'])
    parser.add_argument('--batch-size', type=int, nargs='+', default=[1])
    parser.add_argument('--shape', type=int, nargs='+', default=[224], help='square input sizes')
    parser.add_argument('--hw', type=int, nargs=2, metavar=('H', 'W'), help='one non-square input (overrides --shape)')
    parser.add_argument('--precision', nargs='+', choices=PRECISIONS, default=['fp32'])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--compile', nargs='?', const='default', default=None, choices=COMPILE_MODES,
                        help="torch.compile the model (compiled during warm-up), in this mode ('default' when none "
                             "is given; 'reduce-overhead' and 'max-autotune' replay CUDA graphs on a GPU)")
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--rounds', type=int, default=1,
                        help='measure the models of each setting this many times in turn, pooling their timed steps '
                             '(spreads a drift in a shared machine\'s load over all of them)')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s choice)')
    parser.add_argument('--isolation', choices=['process', 'none'], default='process',
                        help='run every measurement in a fresh process (default) or in this one')
    parser.add_argument('--peak-tflops', type=float, default=None, help='device peak for MFU, in TFLOP/s')
    parser.add_argument('--csv', default=None, help='also write the rows to this CSV file')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.rounds < 1 or args.warmup < 0 or min(args.batch_size) < 1:
        parser.error('--repeats, --rounds and --batch-size must be at least 1, --warmup at least 0')
    return args


def main(argv=None):
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == '--worker':
        return _worker(sys.argv[2])
    args = parse_args(argv)
    rows = run(args)
    print(f'\nMachine: {describe_machine(rows)}')
    print(f'Command: python tools/analysis_tools/benchmark.py {" ".join(sys.argv[1:] if argv is None else argv)}\n')
    print(markdown(rows))
    table = growth(rows)
    if table:
        print('\nGrowth with input size:\n\n' + table)
    if args.csv:
        write_csv(rows, args.csv)
        print(f'\nCSV written to {args.csv}')
    return rows


if __name__ == '__main__':
    main()
