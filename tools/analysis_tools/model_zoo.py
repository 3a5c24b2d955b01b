"""Model-zoo tables and OpenMMLab metafiles: every config of the four models, measured, beside the published figures.

    python tools/analysis_tools/model_zoo.py                      # rewrite all four models' tables and metafiles
    python tools/analysis_tools/model_zoo.py --models glnet dgt   # only these models
    python tools/analysis_tools/model_zoo.py --recount            # also recount every COCO/ADE20K config
    python tools/analysis_tools/model_zoo.py --check              # exit 1 if anything committed is stale or off
    python tools/analysis_tools/model_zoo.py --check --recount    # the same, recounting every COCO/ADE20K config
    python tools/analysis_tools/model_zoo.py --check --jobs 2     # counting in two processes

Inputs, per model folder ``configs/<model>/``:

- ``published.yml``, written by hand: what the authors published (paper, official code, the published params,
  FLOPs and top-1 of each ImageNet config with its source and any documented exception, the official checkpoint
  each config converts from, published COCO/ADE20K figures of an exact config) and the notes printed with them.
  Published figures live there only, never in this script.
- the config files: every ``*.py`` of the folder is in the model index; those named in ``published.yml`` are the
  ImageNet classifiers, all others are COCO (mmdet) or ADE20K (mmseg) configs.

Outputs, per model folder: the section between ``<!-- model-zoo:begin -->`` and ``<!-- model-zoo:end -->`` in
``README.md`` (the markers are placed by hand; the rest of the README is left alone), ``metafile.yml`` in
OpenMMLab's model-index format (what ``mim`` reads), and ``dense_complexity.yml``, the measured cache of the
COCO/ADE20K configs; and the root ``model-index.yml`` that imports the four metafiles.

Measured: params and FLOPs of each ImageNet classifier (with its head) at its evaluation size, and FLOPs of its
backbone alone on an 800x1280 (H x W) image, recounted on every run; params and FLOPs of every COCO config's whole
detector on an 800x1280 image and every ADE20K config's whole segmentor (without the auxiliary head) on a 512x512
image, as ``get_flops.count`` counts them, except that a Mask R-CNN's RoI heads always see its RPN's 1000 test
proposals (``_pin_proposal_count``). FLOPs are multiply-adds, counted by ``mixformer_mm.utils.flops.count_flops``.

The COCO/ADE20K counts take about half an hour on one CPU thread, so they are kept in ``dense_complexity.yml``,
each with a digest of the model its config builds (the config's ``model`` dict without ``init_cfg``). A run
recounts the configs whose digest changed or that have no entry (``--recount``: all of them). ``--check`` recounts
the ImageNet configs and ``SPOT_CHECK`` below (``--recount``: every COCO/ADE20K config), and fails when a committed
file differs from what it regenerates, when a cached entry is missing, no longer fits its config or differs from
its recount, or when a measured figure is more than 1% away from a published one that is not a documented
exception. ``--out-dir`` writes to (or checks) another tree, e.g. a copy of the repository.
"""
import argparse
import copy
import difflib
import hashlib
import inspect
import json
import os
import os.path as osp
import re
import sys
import textwrap
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import yaml

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from get_flops import build_model, count  # noqa: E402  (also puts the repository on sys.path)

from mixformer_mm.engine import load_config  # noqa: E402
from mixformer_mm.utils.flops import count_flops, count_params  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BEGIN, END = '<!-- model-zoo:begin -->', '<!-- model-zoo:end -->'
DETECTION_SIZE = (800, 1280)  # (H, W): where detection papers of this family (GLNet's, Swin's) give FLOPs
SEGMENTATION_SIZE = (512, 512)  # the ADE20K crop of every segmentation config here
TOLERANCE = 0.01  # a published figure may be off by this fraction before it needs a documented reason
FAMILY_KEYS = ('groupmixformer', 'glnet', 'maformer', 'dgt')  # folders under configs/, in model-index order

# COCO/ADE20K configs that --check recounts (the others are checked against their digest only): each backbone
# family's cheapest config (its Semantic FPN at 512x512, 2-4 s on one CPU thread), and one of each other kind of
# model, Mask R-CNN (RPN and RoI heads), RetinaNet and UperNet, with the smallest GroupMixFormer (about 8 s each).
# Recounting all 47 distinct models would add minutes to tests/test_model_zoo.py; these add about half a minute.
SPOT_CHECK = (
    'configs/groupmixformer/fpn_groupmixformer-t_8xb2-80k_ade20k-512x512.py',
    'configs/glnet/fpn_glnet-4g_8xb4-80k_ade20k-512x512.py',
    'configs/maformer/fpn_maformer-s_8xb2-80k_ade20k-512x512.py',
    'configs/dgt/fpn_dgt-t_8xb2-80k_ade20k-512x512.py',
    'configs/groupmixformer/mask-rcnn_groupmixformer-t_fpn_1x_coco.py',
    'configs/groupmixformer/retinanet_groupmixformer-t_fpn_1x_coco.py',
    'configs/groupmixformer/upernet_groupmixformer-t_8xb2-160k_ade20k-512x512.py',
)


# --------------------------------------------------------------------------------------------------------------
# What the authors published (configs/<model>/published.yml)


@dataclass(frozen=True)
class Published:
    """A figure as the authors print it (value in M for params, G for FLOPs)."""
    value: float
    text: str  # as printed, e.g. '5.7M'
    source: str
    exception: str = ''  # why a deviation above TOLERANCE is expected; empty if none is


@dataclass(frozen=True)
class Variant:
    """An ImageNet-1k config."""
    name: str
    config: str  # relative to the repository
    input_size: int = 224  # side of the classification input: the config's evaluation size
    params: Optional[Published] = None
    flops: Optional[Published] = None
    top1: Optional[float] = None  # published ImageNet-1k top-1 of the authors' weights, which this config loads
    top1_source: str = ''
    weights: str = ''  # link to the official checkpoint that converts to this config
    no_weights: str = ''  # why there is none


@dataclass(frozen=True)
class DenseResult:
    """A published COCO/ADE20K figure of exactly one of our configs."""
    task: str  # 'Object Detection', 'Instance Segmentation' or 'Semantic Segmentation'
    dataset: str  # 'COCO' or 'ADE20K'
    metrics: Tuple[Tuple[str, float], ...]  # e.g. (('box AP', 47.8),)
    source: str


@dataclass(frozen=True)
class ModelFamily:
    key: str  # folder under configs/
    collection: str
    paper_title: str
    paper_url: str
    code: str  # our implementation, relative to the repository
    architecture: Tuple[str, ...]
    variants: Tuple[Variant, ...]
    official_code: str = ''  # the authors' model file, for "Converted From"
    converter: str = ''  # our converter of their checkpoints
    dense_results: Tuple[Tuple[str, Tuple[DenseResult, ...]], ...] = ()  # (config name, its published results)
    notes: Tuple[str, ...] = ()  # paragraphs printed under the ImageNet comparison table
    dense_notes: Tuple[str, ...] = ()  # paragraphs printed under the COCO/ADE20K tables

    @property
    def readme(self) -> str:
        return f'configs/{self.key}/README.md'

    @property
    def metafile(self) -> str:
        return f'configs/{self.key}/metafile.yml'

    @property
    def published_file(self) -> str:
        return f'configs/{self.key}/published.yml'

    @property
    def dense_cache(self) -> str:
        return f'configs/{self.key}/dense_complexity.yml'

    @property
    def dense_configs(self) -> Tuple[str, ...]:
        """Every config of the folder that is not an ImageNet variant, relative to the repository."""
        imagenet = {variant.config for variant in self.variants}
        folder = osp.join(REPO, 'configs', self.key)
        found = (f'configs/{self.key}/{name}' for name in os.listdir(folder) if name.endswith('.py'))
        return tuple(sorted(config for config in found if config not in imagenet))


def _published(entry: Optional[dict]) -> Optional[Published]:
    if entry is None:
        return None
    return Published(float(entry['value']), str(entry['text']), entry['source'], entry.get('exception', ''))


def _parse_family(key: str, data: dict) -> ModelFamily:
    variants = []
    for entry in data['imagenet']:
        top1 = entry.get('top1')
        if bool(entry.get('weights')) == bool(entry.get('no_weights')):
            raise ValueError(f'configs/{key}/published.yml: {entry["name"]} needs either weights or no_weights')
        variants.append(Variant(
            name=entry['name'], config=entry['config'], input_size=int(entry.get('input_size', 224)),
            params=_published(entry.get('params')), flops=_published(entry.get('flops')),
            top1=None if top1 is None else float(top1['value']), top1_source='' if top1 is None else top1['source'],
            weights=entry.get('weights', ''), no_weights=entry.get('no_weights', '')))
    dense_results = tuple(
        (name, tuple(DenseResult(r['task'], r['dataset'], tuple((k, float(v)) for k, v in r['metrics'].items()),
                                 r['source']) for r in results))
        for name, results in (data.get('dense') or {}).items())
    return ModelFamily(
        key=key, collection=data['collection'], paper_title=data['paper']['title'], paper_url=data['paper']['url'],
        code=data['code'], architecture=tuple(data['architecture']), variants=tuple(variants),
        official_code=data.get('official_code', ''), converter=data.get('converter', ''),
        dense_results=dense_results, notes=tuple(data.get('notes', ())),
        dense_notes=tuple(data.get('dense_notes', ())))


def load_family(key: str) -> ModelFamily:
    with open(osp.join(REPO, 'configs', key, 'published.yml'), encoding='utf-8') as f:
        return _parse_family(key, yaml.safe_load(f))


FAMILIES = tuple(load_family(key) for key in FAMILY_KEYS)
FAMILY_BY_KEY = {family.key: family for family in FAMILIES}


# --------------------------------------------------------------------------------------------------------------
# Measuring the ImageNet configs


@dataclass(frozen=True)
class Measurement:
    params: int
    flops: int  # classifier, at the variant's input size
    backbone_params: int
    backbone_flops: int  # backbone alone, at DETECTION_SIZE


def _backbone_arguments(cfg) -> Tuple[type, dict]:
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    arguments = copy.deepcopy(dict(cfg.model.backbone))
    arguments['out_indices'] = (0, 1, 2, 3)
    return MODELS.get(arguments.pop('type')), arguments


def _eval_equivalent(backbone_class: type, arguments: dict) -> str:
    """A key shared by backbones that cost the same: all arguments, defaults filled in, except drop path, which
    does nothing in eval."""
    bound = inspect.signature(backbone_class).bind(**arguments)
    bound.apply_defaults()
    return f'{backbone_class.__name__}{sorted((k, v) for k, v in bound.arguments.items() if k != "drop_path_rate")!r}'


_BACKBONE_COSTS: Dict[str, Tuple[int, int]] = {}  # per _eval_equivalent key: (params, FLOPs at DETECTION_SIZE)


def _backbone_cost(cfg) -> Tuple[int, int]:
    # MAFormer-L's 384 fine-tune has the 224 model's backbone: measuring it twice at 800x1280 would cost half a minute
    backbone_class, arguments = _backbone_arguments(cfg)
    key = _eval_equivalent(backbone_class, arguments)
    if key not in _BACKBONE_COSTS:
        backbone = backbone_class(**arguments).eval()
        _BACKBONE_COSTS[key] = count_params(backbone), count_flops(backbone, (torch.randn(1, 3, *DETECTION_SIZE), ))
    return _BACKBONE_COSTS[key]


_MEASURED: Dict[Variant, Measurement] = {}  # so that several checks in one process (the tests) count each once


def measure(variant: Variant) -> Measurement:
    """Counts one variant, or returns its cached counts."""
    if variant not in _MEASURED:
        torch.manual_seed(0)  # DGT's groups depend on the data (its count does not); keep every run identical anyway
        cfg = load_config(osp.join(REPO, variant.config))
        params, flops = count(cfg, (variant.input_size, variant.input_size))
        _MEASURED[variant] = Measurement(params, flops, *_backbone_cost(cfg))
    return _MEASURED[variant]


def _measure_in_worker(variant: Variant) -> Measurement:
    torch.set_num_threads(1)  # one process per core: several threads each would only contend
    return measure(variant)


def _in_processes(function, items: list, jobs: int) -> list:
    """``[function(item) for item in items]``, in ``jobs`` processes when there is more than one item.

    Processes rather than threads, because a traced forward holds the GIL between its operators, and processes of
    one thread each rather than one process of several, because small operators scale worse over threads.
    """
    if jobs <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # 'spawn': a forked child would inherit the parent's OpenMP state, which is not fork-safe
    with ProcessPoolExecutor(min(jobs, len(items)), mp_context=multiprocessing.get_context('spawn')) as pool:
        return list(pool.map(function, items))


def measure_families(families, jobs: int = 1) -> Dict[str, Measurement]:
    """Counts every ImageNet variant of ``families``; ``jobs > 1`` counts those not cached yet in that many
    processes."""
    variants = [variant for family in families for variant in family.variants]
    pending = [variant for variant in variants if variant not in _MEASURED]
    if jobs > 1 and len(pending) > 1:
        _MEASURED.update(zip(pending, _in_processes(_measure_in_worker, pending, jobs)))
    return {variant.name: measure(variant) for variant in variants}


# --------------------------------------------------------------------------------------------------------------
# The COCO / ADE20K configs: what each builds, and its measured cache (configs/<model>/dense_complexity.yml)

DETECTORS = {'MaskRCNN': 'Mask R-CNN', 'RetinaNet': 'RetinaNet'}
DECODERS = {'UPerHead': 'UperNet', 'FPNHead': 'Semantic FPN'}
# (task, metric) pairs of each kind of model, as OpenMMLab's metafiles name them
TASKS = {'Mask R-CNN': (('Object Detection', 'box AP'), ('Instance Segmentation', 'mask AP')),
         'RetinaNet': (('Object Detection', 'box AP'), ),
         'UperNet': (('Semantic Segmentation', 'mIoU'), ),
         'Semantic FPN': (('Semantic Segmentation', 'mIoU'), )}
DATASETS = {'mmdet': 'COCO', 'mmseg': 'ADE20K'}


@dataclass(frozen=True)
class DenseConfig:
    config: str  # relative to the repository
    dataset: str  # 'COCO' or 'ADE20K'
    kind: str  # 'Mask R-CNN', 'RetinaNet', 'UperNet' or 'Semantic FPN'
    digest: str  # of the model the config builds, init_cfg left out

    @property
    def name(self) -> str:
        return osp.splitext(osp.basename(self.config))[0]

    @property
    def input(self) -> Tuple[int, int]:
        return DETECTION_SIZE if self.dataset == 'COCO' else SEGMENTATION_SIZE


@dataclass(frozen=True)
class DenseCost:
    input: Tuple[int, int]
    digest: str
    params: int
    flops: int


def _without_init(node):
    """The model dict in a canonical form without what only decides the initial weights (``init_cfg``, whose path
    also depends on where the repository is, and ``pretrained``)."""
    if isinstance(node, dict):
        return {str(k): _without_init(v) for k, v in sorted(node.items(), key=lambda kv: str(kv[0]))
                if k not in ('init_cfg', 'pretrained')}
    if isinstance(node, (list, tuple)):
        return [_without_init(v) for v in node]
    return node


def model_digest(cfg) -> str:
    text = json.dumps(_without_init(cfg.model.to_dict()), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


def _kind(cfg, config: str) -> str:
    model_type = cfg.model.type.split('.')[-1]
    if model_type in DETECTORS:
        return DETECTORS[model_type]
    head = cfg.model.get('decode_head', {}).get('type', '').split('.')[-1]
    if model_type == 'EncoderDecoder' and head in DECODERS:
        return DECODERS[head]
    raise ValueError(f'{config}: a {model_type} (decode head {head!r}) is not a kind of model the model zoo knows')


_DENSE_CONFIGS: Dict[str, DenseConfig] = {}


def describe(config: str) -> DenseConfig:
    """What a COCO/ADE20K config builds (reads the config; cached per process)."""
    if config not in _DENSE_CONFIGS:
        cfg = load_config(osp.join(REPO, config))
        scope = cfg.get('default_scope')
        if scope not in DATASETS:
            raise ValueError(f'{config}: default_scope {scope!r} is neither mmdet (COCO) nor mmseg (ADE20K)')
        _DENSE_CONFIGS[config] = DenseConfig(config, DATASETS[scope], _kind(cfg, config), model_digest(cfg))
    return _DENSE_CONFIGS[config]


_DENSE_MEASURED: Dict[Tuple[str, Tuple[int, int]], Tuple[int, int]] = {}  # (digest, input) -> (params, FLOPs)


def _pin_proposal_count(detector) -> None:
    """Makes a two-stage detector's RoI heads see exactly its RPN's ``max_per_img`` test proposals.

    With random weights, NMS sometimes keeps fewer (973 of 1000 for GroupMixFormer-B's Mask R-CNN at seed 0), and
    the box head's cost, about 14 M multiply-adds per proposal, would then depend on the random draw. Repeating
    the kept proposals up to the budget counts the model as configured, whatever the weights.
    """
    rpn_head, budget = detector.rpn_head, detector.test_cfg.rpn.max_per_img
    predict = rpn_head.predict

    def predict_budget(*args, **kwargs):
        results = predict(*args, **kwargs)
        return [r[torch.arange(budget) % len(r)] if 0 < len(r) < budget else r for r in results]

    rpn_head.predict = predict_budget


def _count_dense(config: str) -> Tuple[int, int]:
    """``get_flops.count`` of the config's whole model at its dataset's size, with the proposal count pinned."""
    torch.manual_seed(0)
    dense = describe(config)
    measured = build_model(load_config(osp.join(REPO, config)))
    if getattr(measured.model, 'with_rpn', False):
        _pin_proposal_count(measured.model)
    with torch.no_grad():
        return count_params(measured.model), count_flops(measured, (torch.randn(1, 3, *dense.input), ))


def _count_dense_in_worker(config: str) -> Tuple[int, int]:
    torch.set_num_threads(1)
    return _count_dense(config)


def measure_dense(configs: List[str], jobs: int = 1) -> Dict[str, DenseCost]:
    """Counts the whole models of ``configs``, each model once (a 3x config builds its 1x config's model)."""
    dense = [describe(config) for config in configs]
    pending = {}
    for d in dense:
        if (d.digest, d.input) not in _DENSE_MEASURED:
            pending.setdefault((d.digest, d.input), d.config)
    counts = _in_processes(_count_dense_in_worker if jobs > 1 else _count_dense, list(pending.values()), jobs)
    _DENSE_MEASURED.update(zip(pending, counts))
    return {d.name: DenseCost(d.input, d.digest, *_DENSE_MEASURED[(d.digest, d.input)]) for d in dense}


_CACHE_HEADER = """\
# Measured by `{command}`; do not edit. Whole-model params and FLOPs (multiply-adds) of each COCO config's
# detector on one {det_h}x{det_w} (H x W) image, with its RPN and RoI heads, and of each ADE20K config's segmentor on
# one {seg_h}x{seg_w} image, with its decode head but without the auxiliary head, as tools/analysis_tools/get_flops.py
# counts them. `digest` identifies the model the config builds (its model dict without init_cfg): when it changes,
# the next run of the command recounts that config; `--check` fails until then.
"""


def render_cache(family: ModelFamily, costs: Dict[str, DenseCost]) -> str:
    data = {}
    for config in family.dense_configs:
        name = osp.splitext(osp.basename(config))[0]
        if name in costs:
            cost = costs[name]
            data[name] = {'input': list(cost.input), 'digest': cost.digest, 'params': cost.params,
                          'flops': cost.flops}
    header = _CACHE_HEADER.format(command=_regenerate_command(family), det_h=DETECTION_SIZE[0],
                                  det_w=DETECTION_SIZE[1], seg_h=SEGMENTATION_SIZE[0], seg_w=SEGMENTATION_SIZE[1])
    return header + '\n' + yaml.dump(data, Dumper=_IndentedListsDumper, sort_keys=False, default_flow_style=None,
                                     width=120)


def read_cache(root: str, family: ModelFamily) -> Dict[str, DenseCost]:
    """The cache of ``root``, or the repository's where ``root`` has none."""
    text = _read(root, family.dense_cache)
    if text is None:
        text = _read(REPO, family.dense_cache)
    data = yaml.safe_load(text) if text else None
    return {name: DenseCost(tuple(entry['input']), entry['digest'], entry['params'], entry['flops'])
            for name, entry in (data or {}).items()}


CostsAndProblems = Tuple[Dict[str, DenseCost], List[str]]


def dense_costs(family: ModelFamily, root: str, recount: str, jobs: int = 1) -> CostsAndProblems:
    """The costs to write for ``family``'s COCO/ADE20K configs, and what is wrong with the cache of ``root``.

    ``recount``: 'stale' recounts the configs whose entry is missing or no longer fits (writing), 'spot' the
    configs in SPOT_CHECK (checking: a missing or unfitting entry is a problem), 'all' every config.
    """
    cached = read_cache(root, family)
    dense = [describe(config) for config in family.dense_configs]
    problems, to_count = [], []
    for d in dense:
        entry = cached.get(d.name)
        fits = entry is not None and entry.digest == d.digest and entry.input == d.input
        if recount == 'all' or (recount == 'spot' and d.config in SPOT_CHECK) or (recount == 'stale' and not fits):
            to_count.append(d.config)
        elif entry is None:
            problems.append(f'{family.dense_cache}: {d.name} was never measured; run {_regenerate_command(family)}')
        elif not fits:
            problems.append(f'{family.dense_cache}: {d.name} builds another model than when it was measured '
                            f'(digest {entry.digest}, now {d.digest}); run {_regenerate_command(family)}')
    counted = measure_dense(to_count, jobs)
    costs = {d.name: cached[d.name] for d in dense if d.name in cached}
    for name, cost in counted.items():
        entry = cached.get(name)
        if recount != 'stale' and entry is not None and (entry.params, entry.flops) != (cost.params, cost.flops):
            problems.append(f'{family.dense_cache}: {name} counts {cost.params} params and {cost.flops} FLOPs now, '
                            f'{entry.params} and {entry.flops} when cached; run {_regenerate_command(family)} '
                            '--recount')
        elif recount == 'spot' and entry is None:
            problems.append(f'{family.dense_cache}: {name} was never measured; run {_regenerate_command(family)}')
        costs[name] = cost
    return costs, problems


# --------------------------------------------------------------------------------------------------------------
# Comparing with the published figures


@dataclass(frozen=True)
class Comparison:
    variant: str
    figure: str  # 'params' or 'FLOPs'
    measured: float  # in the published unit: M for params, G for FLOPs
    published: Optional[Published]

    @property
    def deviation(self) -> float:
        return self.measured / self.published.value - 1

    @property
    def within_tolerance(self) -> bool:
        # rounded like the table shows it, so that the printed deviation and the status never disagree
        return round(abs(self.deviation), 4) <= TOLERANCE

    @property
    def status(self) -> str:
        if self.published is None:
            return 'not published'
        if self.within_tolerance:
            return 'matches (≤1%)'
        if self.published.exception:
            return f'documented exception: {self.published.exception}'
        return 'OFF BY MORE THAN 1%, no documented reason'

    @property
    def problem(self) -> Optional[str]:
        if self.published is None:
            return None
        where = f'{self.variant} {self.figure}: measured {self.measured:.3f}, published {self.published.text}'
        if not self.within_tolerance and not self.published.exception:
            return f'{where} ({self.deviation:+.2%}): off by more than 1% and not a documented exception'
        if self.within_tolerance and self.published.exception:
            return f'{where} ({self.deviation:+.2%}): now within 1%, remove its documented exception'
        return None


def compare(variant: Variant, measurement: Measurement) -> List[Comparison]:
    return [Comparison(variant.name, 'params', measurement.params / 1e6, variant.params),
            Comparison(variant.name, 'FLOPs', measurement.flops / 1e9, variant.flops)]


def published_problems(families, measurements: Dict[str, Measurement]) -> List[str]:
    comparisons = [c for family in families for variant in family.variants
                   for c in compare(variant, measurements[variant.name])]
    return [c.problem for c in comparisons if c.problem]


def dense_result_problems(family: ModelFamily) -> List[str]:
    """Published dense results must name an existing config, and only the metrics its kind of model reports."""
    problems = []
    configs = {osp.splitext(osp.basename(config))[0]: config for config in family.dense_configs}
    for name, results in family.dense_results:
        if name not in configs:
            problems.append(f'{family.published_file}: dense results of {name}, which is not a config of the folder')
            continue
        dense = describe(configs[name])
        allowed = {(task, metric) for task, metric in TASKS[dense.kind]}
        for result in results:
            for metric, _ in result.metrics:
                if result.dataset != dense.dataset or (result.task, metric) not in allowed:
                    problems.append(f'{family.published_file}: {name} is a {dense.kind} on {dense.dataset}; it has '
                                    f'no {result.task} {metric} on {result.dataset}')
    return problems


# --------------------------------------------------------------------------------------------------------------
# Rendering


def _millions(count_: int) -> str:
    return f'{count_ / 1e6:.3f}'


def _billions(count_: int) -> str:
    return f'{count_ / 1e9:.3f}'


def _regenerate_command(family: ModelFamily) -> str:
    return f'python tools/analysis_tools/model_zoo.py --models {family.key}'


def _link(config: str) -> str:
    base = osp.basename(config)
    return f'[{osp.splitext(base)[0]}]({base})'


def _weights_cell(family: ModelFamily, variant: Variant) -> str:
    if variant.weights:
        return f'[official]({variant.weights}), convert with `{osp.basename(family.converter)}`'
    return variant.no_weights


def _imagenet_table(family: ModelFamily, measurements: Dict[str, Measurement]) -> List[str]:
    lines = ['| Model | Input | Params (M) | FLOPs (G) | Top-1 (%) | Config | Weights |',
             '| :-- | :-: | --: | --: | :-: | :-- | :-- |']
    for variant in family.variants:
        m = measurements[variant.name]
        size = variant.input_size
        top1 = '—' if variant.top1 is None else f'{variant.top1:.1f} ({variant.top1_source})'
        lines.append(f'| {variant.name} | {size}×{size} | {_millions(m.params)} | {_billions(m.flops)} | {top1} | '
                     f'{_link(variant.config)} | {_weights_cell(family, variant)} |')
    return lines


def _converter_commands(family: ModelFamily) -> List[str]:
    with_weights = [variant for variant in family.variants if variant.weights]
    if not with_weights:
        return []
    lines = ['```bash']
    for variant in with_weights:
        checkpoint = osp.basename(variant.config).split('_')[0]
        lines.append(f'python {family.converter} FILE checkpoints/{checkpoint}_in1k.pth  # {variant.name}')
    lines.append('```')
    return lines


def _variant_of(family: ModelFamily, dense_name: str) -> str:
    """The ImageNet variant whose backbone a dense config uses, from the config's name (its second field)."""
    fields = dense_name.split('_')
    for variant in family.variants:
        if len(fields) > 1 and osp.basename(variant.config).startswith(fields[1] + '_'):
            return variant.name
    raise ValueError(f'configs/{family.key}/{dense_name}.py: no ImageNet variant of {family.key} named {fields[1:2]}')


def _schedule(dense_name: str) -> str:
    match = re.search(r'_(\d+x|ms-3x|ms-crop-3x|\d+k)_', dense_name) or re.search(r'-(\d+k)_', dense_name)
    return match.group(1) if match else '—'


def _published_metrics(family: ModelFamily, name: str) -> Dict[str, str]:
    for config_name, results in family.dense_results:
        if config_name == name:
            return {metric: f'{value:.1f} ({result.source})' for result in results for metric, value in result.metrics}
    return {}


def _dense_table(family: ModelFamily, costs: Dict[str, DenseCost], dataset: str) -> List[str]:
    dense = [describe(config) for config in family.dense_configs]
    dense = [d for d in dense if d.dataset == dataset]
    if not dense:
        return []
    metrics = [m for m in ('box AP', 'mask AP', 'mIoU')
               if any(m in {metric for _, metric in TASKS[d.kind]} for d in dense)]
    order = {kind: i for i, kind in enumerate(TASKS)}
    variants = {variant.name: i for i, variant in enumerate(family.variants)}
    dense.sort(key=lambda d: (order[d.kind], variants[_variant_of(family, d.name)], d.name))
    height, width = dense[0].input
    lines = [f'| Model | {"Detector" if dataset == "COCO" else "Segmentor"} | Schedule | Params (M) | '
             f'FLOPs @ {height}×{width} (G) | {" | ".join(metrics)} | Config | Weights |',
             '| :-- | :-- | :-: | --: | --: | ' + ' | '.join(':-:' for _ in metrics) + ' | :-- | :-- |']
    for d in dense:
        cost = costs.get(d.name)  # None only while a check reports the entry as never measured
        params, flops = ('not measured', ) * 2 if cost is None else (_millions(cost.params), _billions(cost.flops))
        published = _published_metrics(family, d.name)
        reported = {metric for _, metric in TASKS[d.kind]}
        cells = [published.get(m, '—') if m in reported else 'n/a' for m in metrics]
        lines.append(f'| {_variant_of(family, d.name)} | {d.kind} | {_schedule(d.name)} | {params} | {flops} | '
                     f'{" | ".join(cells)} | {_link(d.config)} | none |')
    return lines


def _measured_table(family: ModelFamily, measurements: Dict[str, Measurement]) -> List[str]:
    height, width = DETECTION_SIZE
    lines = [f'| Model | Config | Params (M) | Input | FLOPs (G) | Backbone params (M) | '
             f'Backbone FLOPs @ {height}×{width} (G) |',
             '| :-- | :-- | --: | :-: | --: | --: | --: |']
    for variant in family.variants:
        m = measurements[variant.name]
        config = osp.basename(variant.config)
        size = variant.input_size
        lines.append(f'| {variant.name} | [{config}]({config}) | {_millions(m.params)} | {size}×{size} | '
                     f'{_billions(m.flops)} | {_millions(m.backbone_params)} | {_billions(m.backbone_flops)} |')
    return lines


def _comparison_row(comparison: Comparison) -> str:
    unit = 'M' if comparison.figure == 'params' else 'G'
    published = comparison.published
    return (f'| {comparison.variant} | {comparison.figure} | {published.text} | {published.source} | '
            f'{comparison.measured:.3f}{unit} | {1 + comparison.deviation:.3f} ({comparison.deviation:+.2%}) | '
            f'{comparison.status} |')


def _comparison_table(family: ModelFamily, measurements: Dict[str, Measurement]) -> List[str]:
    lines = ['| Model | Figure | Published | Source | Measured | Measured / published | Status |',
             '| :-- | :-- | --: | :-- | --: | :-: | :-- |']
    for variant in family.variants:
        comparisons = compare(variant, measurements[variant.name])
        if all(c.published is None for c in comparisons):
            lines.append(f'| {variant.name} | params, FLOPs | — | — | — | — | not published |')
            continue
        for comparison in comparisons:
            if comparison.published is None:
                lines.append(f'| {variant.name} | {comparison.figure} | — | — | — | — | not published |')
            else:
                lines.append(_comparison_row(comparison))
    return lines


def _wrapped(text: str, indent: str = '') -> str:
    # the hand-written READMEs keep their prose within 115 columns; tables cannot wrap
    return textwrap.fill(text, width=115, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def render_section(family: ModelFamily, measurements: Dict[str, Measurement], costs: Dict[str, DenseCost]) -> str:
    """The README text between the markers (the markers' lines excluded)."""
    height, width = DETECTION_SIZE
    official = any(variant.weights for variant in family.variants)
    weights = (f'Weights: the authors\' checkpoint (its link opens their share page; download the file there), '
               f'converted with `{family.converter}` into the classifier the config loads, as the commands below '
               'write it. No converted weights are hosted here, and the COCO and ADE20K configs have none.'
               if official else
               'Weights: none; the authors released no code or weights, and none of these configs has been trained '
               'here.')
    lines = [
        _wrapped(f'Generated by `{_regenerate_command(family)}` from [`published.yml`](published.yml) (the '
                 'authors\' figures, each with its source) and our measurements; it also writes '
                 '[`metafile.yml`](metafile.yml) and [`dense_complexity.yml`](dense_complexity.yml), and '
                 '`tests/test_model_zoo.py` fails when this section is stale. Params and FLOPs are measured: FLOPs '
                 'are multiply-adds (one fused multiply-add counts 1), counted by '
                 '`mixformer_mm.utils.flops.count_flops`: mmengine\'s FlopAnalyzer plus the attention products and '
                 'the costs that modules report analytically.'),
        '',
        '### ImageNet-1k',
        '',
        _wrapped('Params and FLOPs of the whole classifier (backbone, pooling, head) at the config\'s evaluation '
                 'size (Input), as `tools/analysis_tools/get_flops.py` counts it. Top-1: the published accuracy of '
                 'the authors\' weights (source in brackets); — where none belongs to the config. ' + weights),
        '',
        *_imagenet_table(family, measurements),
    ]
    commands = _converter_commands(family)
    if commands:
        lines += ['', _wrapped('FILE is the downloaded checkpoint, or an http(s) URL of the file itself (the '
                               'converter downloads it once into torch.hub\'s cache); the share pages above are '
                               'not files.'), '', *commands]
    for dataset, (h, w), what in (
            ('COCO', DETECTION_SIZE, 'the whole detector (RPN and RoI heads included; a Mask R-CNN\'s RoI heads on '
                                     'exactly its RPN\'s 1000 test proposals) on one {}×{} (H×W) image'),
            ('ADE20K', SEGMENTATION_SIZE, 'the whole segmentor (decode head, no auxiliary head) on one {}×{} image')):
        table = _dense_table(family, costs, dataset)
        if table:
            lines += ['', f'### {dataset}', '',
                      _wrapped(f'Params and FLOPs of {what.format(h, w)}, as `tools/analysis_tools/get_flops.py '
                               f'CONFIG --shape {h} {w}` counts it (cached in `dense_complexity.yml`). Metrics: a '
                               'published figure of exactly this config; — where none is known.'),
                      '', *table]
    if family.dense_notes:
        lines += ['', *(_wrapped(note) for note in family.dense_notes)]
    lines += [
        '',
        '### Complexity (measured)',
        '',
        _wrapped('- **Params, FLOPs**: the whole ImageNet classifier of the config (backbone, pooling, head), at '
                 'the config\'s evaluation size (Input), as `tools/analysis_tools/get_flops.py` counts it.', '  '),
        _wrapped(f'- **Backbone**: the config\'s `model.backbone` alone, built with `out_indices=(0, 1, 2, 3)` (the '
                 f'four stage outputs with the norms this backbone puts on them; no neck, no head), on one '
                 f'{height}×{width} (H×W) image, the COCO size at which detection papers of this family (GLNet\'s, '
                 'Swin\'s) report FLOPs.', '  '),
        '',
        *_measured_table(family, measurements),
        '',
        _wrapped('Against the published figures (params and FLOPs at the Input size above). A figure more than 1% '
                 'off must have its reason written here:'),
        '',
        *_comparison_table(family, measurements),
        '',
        *(_wrapped(note) for note in family.notes),
    ]
    return '\n'.join(lines)


def replace_section(readme: str, section: str, path: str) -> str:
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise ValueError(f'{path}: needs exactly one "{BEGIN}" line followed by one "{END}" line')
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f'{head}{BEGIN}\n{section}\n{END}{tail}'


class _IndentedListsDumper(yaml.SafeDumper):
    """Indents list items under their key, as OpenMMLab's metafiles are written."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


_METAFILE_HEADER = """\
# Generated by `{command}` from published.yml
# (the authors' figures) and our measurements; edit published.yml or tools/analysis_tools/model_zoo.py, not this
# file. Parameters and FLOPs (multiply-adds) are measured: an ImageNet config's classifier at its evaluation size
# (224x224, or 384x384 for *-384px); a COCO config's whole detector at 800x1280 and an ADE20K config's whole
# segmentor at 512x512 (dense_complexity.yml).
"""
_RESULTS_COMMENT = """\
# Results: the ImageNet-1k top-1 that the authors publish in their official README for their own weights, which
# convert to these configs (tools/model_converters/). They are the authors' figures, not measured here.
"""
_CONVERTED_COMMENT = """\
# Converted From: the authors' checkpoint (a share page to download it from) and their model code; the converter
# named in README.md turns it into the classifier the config loads. No converted weights are hosted.
"""
_NO_RESULTS_COMMENT = """\
# Results: [] where no result is known for the config (`mim search` iterates every model's Results, so a list).
"""


def metafile_data(family: ModelFamily, measurements: Dict[str, Measurement], costs: Dict[str, DenseCost]) -> dict:
    dense = [describe(config) for config in family.dense_configs]
    datasets = ['ImageNet-1k'] + [d for d in ('COCO', 'ADE20K') if any(x.dataset == d for x in dense)]
    collection = {
        'Name': family.collection,
        'Metadata': {'Training Data': datasets, 'Architecture': list(family.architecture)},
        'Paper': {'Title': family.paper_title, 'URL': family.paper_url},
        'README': family.readme,
        'Code': {'URL': family.code},
    }
    models = []
    for variant in family.variants:
        m = measurements[variant.name]
        results = [] if variant.top1 is None else [
            {'Task': 'Image Classification', 'Dataset': 'ImageNet-1k', 'Metrics': {'Top 1 Accuracy': variant.top1}}]
        model = {'Name': osp.splitext(osp.basename(variant.config))[0],
                 'Metadata': {'Training Data': 'ImageNet-1k', 'FLOPs': m.flops, 'Parameters': m.params},
                 'In Collection': family.collection,
                 'Results': results,
                 'Config': variant.config}
        if variant.weights:
            model['Converted From'] = {'Weights': variant.weights, 'Code': family.official_code}
        models.append(model)
    published = dict(family.dense_results)
    for d in dense:
        cost = costs.get(d.name)
        if cost is None:  # only while a check reports the entry as never measured
            continue
        results = [{'Task': r.task, 'Dataset': r.dataset, 'Metrics': dict(r.metrics)}
                   for r in published.get(d.name, ())]
        models.append({'Name': d.name,
                       'Metadata': {'Training Data': d.dataset, 'FLOPs': cost.flops, 'Parameters': cost.params},
                       'In Collection': family.collection,
                       'Results': results,
                       'Config': d.config})
    return {'Collections': [collection], 'Models': models}


def _yaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_IndentedListsDumper, sort_keys=False, allow_unicode=True, width=120)


def render_metafile(family: ModelFamily, measurements: Dict[str, Measurement], costs: Dict[str, DenseCost]) -> str:
    data = metafile_data(family, measurements, costs)
    header = _METAFILE_HEADER.format(command=_regenerate_command(family))
    if any(model['Results'] for model in data['Models']):
        header += _RESULTS_COMMENT
    if any('Converted From' in model for model in data['Models']):
        header += _CONVERTED_COMMENT
    if not all(model['Results'] for model in data['Models']):
        header += _NO_RESULTS_COMMENT
    # one block per top-level key, separated by a blank line, as OpenMMLab's metafiles are laid out
    blocks = [_yaml({key: value}) for key, value in data.items()]
    return header + '\n' + '\n'.join(blocks)


def render_model_index() -> str:
    return _yaml({'Import': [family.metafile for family in FAMILIES]})


# --------------------------------------------------------------------------------------------------------------
# Writing and checking


def _read(root: str, path: str) -> Optional[str]:
    full = osp.join(root, path)
    if not osp.isfile(full):
        return None
    with open(full, encoding='utf-8') as f:
        return f.read()


def expected_files(families, measurements: Dict[str, Measurement], root: str,
                   costs: Dict[str, Dict[str, DenseCost]]) -> Dict[str, str]:
    """Every generated file's full text, keyed by path relative to the tree. A README keeps its text in ``root``
    (or, if the tree has none, the repository's) outside the markers. ``costs``: per family key, its COCO/ADE20K
    configs' costs."""
    files = {'model-index.yml': render_model_index()}
    for family in families:
        readme = _read(root, family.readme)
        if readme is None:
            readme = _read(REPO, family.readme)
        family_costs = costs[family.key]
        files[family.readme] = replace_section(readme, render_section(family, measurements, family_costs),
                                               family.readme)
        files[family.metafile] = render_metafile(family, measurements, family_costs)
        files[family.dense_cache] = render_cache(family, family_costs)
    return files


def stale_files(expected: Dict[str, str], root: str) -> List[str]:
    problems = []
    for path, text in expected.items():
        committed = _read(root, path)
        if committed is None:
            problems.append(f'{path}: missing')
        elif committed != text:
            diff = difflib.unified_diff(committed.splitlines(), text.splitlines(), f'{path} (committed)',
                                        f'{path} (regenerated)', lineterm='', n=0)
            problems.append(f'{path}: stale\n' + '\n'.join(diff))
    return problems


def write_files(expected: Dict[str, str], root: str) -> None:
    for path, text in expected.items():
        full = osp.join(root, path)
        os.makedirs(osp.dirname(full) or '.', exist_ok=True)
        with open(full, 'w', encoding='utf-8') as f:
            f.write(text)


def all_dense_costs(families, root: str, recount: str,
                    jobs: int = 1) -> Tuple[Dict[str, Dict[str, DenseCost]], List[str]]:
    costs, problems = {}, []
    for family in families:
        costs[family.key], family_problems = dense_costs(family, root, recount, jobs)
        problems += family_problems + dense_result_problems(family)
    return costs, problems


def check(families, root: str = REPO, jobs: int = 1, recount_all: bool = False) -> List[str]:
    """Everything wrong with the committed tables: stale or missing files, cache entries that are missing, no longer
    fit their config or differ from a recount, and undocumented deviations."""
    measurements = measure_families(families, jobs)
    costs, problems = all_dense_costs(families, root, 'all' if recount_all else 'spot', jobs)
    return (problems + stale_files(expected_files(families, measurements, root, costs), root)
            + published_problems(families, measurements))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', choices=list(FAMILY_BY_KEY), default=list(FAMILY_BY_KEY),
                        help='model folders under configs/ (default: all)')
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 listing what is stale or off by more than 1%%')
    parser.add_argument('--recount', action='store_true',
                        help='count every COCO/ADE20K config again (default: writing counts those whose model '
                        'changed, --check those in SPOT_CHECK)')
    parser.add_argument('--out-dir', default=REPO, help='tree to write to or check (default: this repository)')
    parser.add_argument('--jobs', type=int, default=1, help='count in this many processes (default 1)')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    families = [FAMILY_BY_KEY[key] for key in args.models]
    if args.check:
        problems = check(families, args.out_dir, args.jobs, args.recount)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f'model zoo: {len(problems)} problem(s)' if problems else 'model zoo: up to date')
        return 1 if problems else 0
    measurements = measure_families(families, args.jobs)
    costs, problems = all_dense_costs(families, args.out_dir, 'all' if args.recount else 'stale', args.jobs)
    write_files(expected_files(families, measurements, args.out_dir, costs), args.out_dir)
    for problem in problems + published_problems(families, measurements):
        print(problem, file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
