"""Model-zoo tables: measured params and FLOPs of every variant, checked against the papers' published figures.

    python tools/analysis_tools/model_zoo.py                      # rewrite all four models' tables and metafiles
    python tools/analysis_tools/model_zoo.py --models glmix dgt   # only these models
    python tools/analysis_tools/model_zoo.py --check              # exit 1 if anything committed is stale or off
    python tools/analysis_tools/model_zoo.py --check --jobs 2     # the same, counting in two processes

For each model (a folder of ``configs/``) it writes

- the section between ``<!-- model-zoo:begin -->`` and ``<!-- model-zoo:end -->`` in ``configs/<model>/README.md``
  (the markers are placed by hand; the rest of the README is left alone);
- ``configs/<model>/metafile.yml`` in OpenMMLab's model-index format (what ``mim`` reads);
- the root ``model-index.yml`` that imports the four metafiles.

Measured: params and FLOPs of each ImageNet classifier (with its head) at its evaluation size, through
``get_flops.count``, and FLOPs of its backbone alone on an 800x1280 (H x W) image, the COCO size at which detection
papers give backbone FLOPs. FLOPs are multiply-adds, counted by ``mixformer_mm.utils.flops.count_flops``.
``--check`` regenerates everything in memory and fails when a committed file differs, or when a measured figure is
more than 1% away from a published one that is not a documented exception. ``--out-dir`` writes to (or checks)
another tree, e.g. a copy of the repository.
"""
import argparse
import copy
import difflib
import inspect
import os
import os.path as osp
import sys
import textwrap
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import yaml

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from get_flops import count  # noqa: E402  (also puts the repository on sys.path)

from mixformer_mm.engine import load_config  # noqa: E402
from mixformer_mm.utils.flops import count_flops, count_params  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BEGIN, END = '<!-- model-zoo:begin -->', '<!-- model-zoo:end -->'
DETECTION_SIZE = (800, 1280)  # (H, W): where detection papers of this family (GLNet's, Swin's) give backbone FLOPs
TOLERANCE = 0.01  # a published figure may be off by this fraction before it needs a documented reason


@dataclass(frozen=True)
class Published:
    """A figure as the authors print it (value in M for params, G for FLOPs)."""
    value: float
    text: str  # as printed, e.g. '5.7M'
    source: str
    exception: str = ''  # why a deviation above TOLERANCE is expected; empty if none is


@dataclass(frozen=True)
class Variant:
    name: str
    config: str  # relative to the repository
    input_size: int = 224  # side of the classification input: the config's evaluation size
    params: Optional[Published] = None
    flops: Optional[Published] = None
    top1: Optional[float] = None  # published ImageNet-1k top-1 of the authors' weights, which this config loads


@dataclass(frozen=True)
class ModelFamily:
    key: str  # folder under configs/
    collection: str
    paper_title: str
    paper_url: str
    code: str  # our implementation, relative to the repository
    architecture: Tuple[str, ...]
    variants: Tuple[Variant, ...]
    notes: Tuple[str, ...] = ()  # paragraphs printed under the comparison table

    @property
    def readme(self) -> str:
        return f'configs/{self.key}/README.md'

    @property
    def metafile(self) -> str:
        return f'configs/{self.key}/metafile.yml'


def _gmf(value, text, exception=''):
    return Published(value, text, 'official README', exception)


_GMF_L_MISMATCH = ('the official L config, marked "need to adjust", is not the published L, which is unknown '
                   '(no single depth change gives it; its weights were never released)')
_GMF = 'configs/groupmixformer/groupmixformer-{}_8xb64_in1k.py'
_GLNET = 'configs/glmix/glnet-{}_16xb128_in1k.py'

FAMILIES = (
    ModelFamily(
        key='groupmixformer',
        collection='GroupMixFormer',
        paper_title='Advancing Vision Transformers with Group-Mix Attention',
        paper_url='https://arxiv.org/abs/2311.15157',
        code='mixformer_mm/models/backbones/groupmixformer.py',
        architecture=('Group-Mix Attention', 'Depthwise Separable Convolution', 'Factorized Attention',
                      'Convolutional Relative Position Encoding'),
        variants=(
            Variant('GroupMixFormer-M', _GMF.format('m'), params=_gmf(5.7, '5.7M'), top1=79.6,
                    flops=_gmf(1.4, '1.4G', 'the official code counts 1.350G too; the README rounds it up')),
            Variant('GroupMixFormer-T', _GMF.format('t'), params=_gmf(11.0, '11.0M'), flops=_gmf(3.7, '3.7G'),
                    top1=82.6),
            Variant('GroupMixFormer-S', _GMF.format('s'), params=_gmf(22.4, '22.4M'), flops=_gmf(5.2, '5.2G'),
                    top1=83.4),
            Variant('GroupMixFormer-B', _GMF.format('b'), params=_gmf(45.8, '45.8M'), flops=_gmf(17.6, '17.6G'),
                    top1=84.7),
            # No top-1 for L: our L is the official config, not the (unknown) model behind the published 85.0.
            Variant('GroupMixFormer-L', _GMF.format('l'), params=_gmf(70.3, '70.3M', _GMF_L_MISMATCH),
                    flops=_gmf(36.1, '36.1G', _GMF_L_MISMATCH)),
        ),
        notes=('The published top-1 of M/T/S/B (79.6/82.6/83.4/84.7, official README) is that of the official '
               'weights, which convert to these configs; it is in `metafile.yml`. The paper also reports L at '
               '384² (70.3M, 86.2 top-1) without a config or weights; it has no row here.', )),
    ModelFamily(
        key='glmix',
        collection='GLNet',
        paper_title='Revisiting the Integration of Convolution and Attention for Vision Backbone',
        paper_url='https://arxiv.org/abs/2411.14429',
        code='mixformer_mm/models/backbones/glnet.py',
        architecture=('GLMix Block', 'Soft Clustering', 'Multi-Head Self-Attention', 'Depthwise Convolution'),
        variants=(
            Variant('GLNet-STL', _GLNET.format('stl'), params=Published(30, '30M', 'official README'),
                    flops=Published(4.4, '4.4G', 'official README'), top1=82.5),
            Variant('GLNet-STL (param. slots)', _GLNET.format('stl-paramslot'),
                    params=Published(30, '30M', 'official README',
                                     'the README rounds to whole millions (29.5-30.5M prints as 30M)'),
                    flops=Published(4.4, '4.4G', 'official README'), top1=82.1),
            Variant('GLNet-4G', _GLNET.format('4g'), params=Published(27, '27M', 'official README'),
                    flops=Published(4.5, '4.5G', 'official README'), top1=83.7),
            Variant('GLNet-9G', _GLNET.format('9g'), params=Published(60, '60M', 'official README'),
                    flops=Published(9.7, '9.7G', 'official README'), top1=84.5),
            Variant('GLNet-16G', _GLNET.format('16g'), params=Published(106, '106M', 'official README'),
                    flops=Published(16.7, '16.7G', 'official README'), top1=85.0),
        ),
        notes=('The published top-1 (official README, the official weights, which convert to these configs; 16G '
               'with its EMA weights) is in `metafile.yml`. The paper\'s COCO FLOPs at 800×1280 were not '
               'available to us, so the backbone column has nothing to compare with.', )),
    ModelFamily(
        key='maformer',
        collection='MAFormer',
        paper_title='MAFormer: A Transformer Network with Multi-scale Attention Fusion for Visual Recognition',
        paper_url='https://arxiv.org/abs/2209.01620',
        code='mixformer_mm/models/backbones/maformer.py',
        architecture=('Multi-scale Attention Fusion', 'Window Multi-Head Self-Attention',
                      'Global Learning with Down-sampling', 'Cross-Attention'),
        variants=(
            Variant('MAFormer-S', 'configs/maformer/maformer-s_8xb256_in1k.py'),
            Variant('MAFormer-B', 'configs/maformer/maformer-b_8xb256_in1k.py'),
            Variant('MAFormer-L', 'configs/maformer/maformer-l_8xb128_in1k.py'),
            Variant('MAFormer-L @384', 'configs/maformer/maformer-l_8xb32_in1k-384px.py', input_size=384),
        ),
        notes=('The paper\'s S/B/L sizes are unknown: it publishes no params or FLOPs that could be compared, and '
               'our S/B/L are our own design, and so are the size estimates they were built to '
               '(`tests/test_maformer.py` checks them). MAFormer-L @384 keeps the 224 GLD grids, so its backbone '
               'is MAFormer-L\'s.', )),
    ModelFamily(
        key='dgt',
        collection='DGT',
        paper_title='Dynamic Group Transformer: A General Vision Transformer Backbone with Dynamic Group Attention',
        paper_url='https://arxiv.org/abs/2203.03937',
        code='mixformer_mm/models/backbones/dgt.py',
        architecture=('Dynamic Group Attention', 'K-Means Clustering', 'Conditional Position Encoding',
                      'Inverted Residual Feed-Forward Network'),
        variants=(
            Variant('DGT-T', 'configs/dgt/dgt-t_8xb128_in1k.py'),
            Variant('DGT-S', 'configs/dgt/dgt-s_8xb128_in1k.py'),
            Variant('DGT-B', 'configs/dgt/dgt-b_8xb128_in1k.py'),
        ),
        notes=('No figure of the paper is known to us, and the variants are our own design. The analytic estimates '
               'of their sizes in the table above are ours too (`tests/test_configs_dgt.py` checks them).', )),
)
FAMILY_BY_KEY = {family.key: family for family in FAMILIES}


# --------------------------------------------------------------------------------------------------------------
# Measuring


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


def measure_families(families, jobs: int = 1) -> Dict[str, Measurement]:
    """Counts every variant of ``families``; ``jobs > 1`` counts those not cached yet in that many processes.

    Processes rather than threads, because a traced forward holds the GIL between its operators, and processes of
    one thread each rather than one process of several, because small operators scale worse over threads.
    """
    variants = [variant for family in families for variant in family.variants]
    pending = [variant for variant in variants if variant not in _MEASURED]
    if jobs > 1 and len(pending) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # 'spawn': a forked child would inherit the parent's OpenMP state, which is not fork-safe
        with ProcessPoolExecutor(min(jobs, len(pending)), mp_context=multiprocessing.get_context('spawn')) as pool:
            _MEASURED.update(zip(pending, pool.map(_measure_in_worker, pending)))
    return {variant.name: measure(variant) for variant in variants}


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


# --------------------------------------------------------------------------------------------------------------
# Rendering


def _millions(count_: int) -> str:
    return f'{count_ / 1e6:.3f}'


def _billions(count_: int) -> str:
    return f'{count_ / 1e9:.3f}'


def _regenerate_command(family: ModelFamily) -> str:
    return f'python tools/analysis_tools/model_zoo.py --models {family.key}'


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


def render_section(family: ModelFamily, measurements: Dict[str, Measurement]) -> str:
    """The README text between the markers (the markers' lines excluded)."""
    height, width = DETECTION_SIZE
    lines = [
        '### Complexity (measured)',
        '',
        _wrapped(f'Generated by `{_regenerate_command(family)}`, which also writes [`metafile.yml`](metafile.yml); '
                 '`tests/test_model_zoo.py` fails when this section is stale. FLOPs are multiply-adds (one fused '
                 'multiply-add counts 1), counted by `mixformer_mm.utils.flops.count_flops`: mmengine\'s '
                 'FlopAnalyzer plus the attention products and the costs that modules report analytically.'),
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
# Generated by `{command}`;
# edit tools/analysis_tools/model_zoo.py, not this file. Parameters and FLOPs are measured on the ImageNet
# classifier of each config, at its evaluation size (224x224, or 384x384 for *-384px); FLOPs are multiply-adds.
# No weights are released.
"""
_RESULTS_COMMENT = """\
# Results: the ImageNet-1k top-1 that the authors publish in their official README for their own weights, which
# convert to these configs (tools/model_converters/). They are the paper's figures, not measured here.
"""
_NO_RESULTS_COMMENT = """\
# Results: [] where no result is known for the config (`mim search` iterates every model's Results, so a list).
"""


def metafile_data(family: ModelFamily, measurements: Dict[str, Measurement]) -> dict:
    collection = {
        'Name': family.collection,
        'Metadata': {'Training Data': 'ImageNet-1k', 'Architecture': list(family.architecture)},
        'Paper': {'Title': family.paper_title, 'URL': family.paper_url},
        'README': family.readme,
        'Code': {'URL': family.code},
    }
    models = []
    for variant in family.variants:
        m = measurements[variant.name]
        results = [] if variant.top1 is None else [
            {'Task': 'Image Classification', 'Dataset': 'ImageNet-1k', 'Metrics': {'Top 1 Accuracy': variant.top1}}]
        models.append({'Name': osp.splitext(osp.basename(variant.config))[0],
                       'Metadata': {'FLOPs': m.flops, 'Parameters': m.params},
                       'In Collection': family.collection,
                       'Results': results,
                       'Config': variant.config})
    return {'Collections': [collection], 'Models': models}


def _yaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_IndentedListsDumper, sort_keys=False, allow_unicode=True, width=120)


def render_metafile(family: ModelFamily, measurements: Dict[str, Measurement]) -> str:
    data = metafile_data(family, measurements)
    header = _METAFILE_HEADER.format(command=_regenerate_command(family))
    if any(model['Results'] for model in data['Models']):
        header += _RESULTS_COMMENT
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


def expected_files(families, measurements: Dict[str, Measurement], root: str) -> Dict[str, str]:
    """Every generated file's full text, keyed by path relative to the tree. A README keeps its text in ``root``
    (or, if the tree has none, the repository's) outside the markers."""
    files = {'model-index.yml': render_model_index()}
    for family in families:
        readme = _read(root, family.readme)
        if readme is None:
            readme = _read(REPO, family.readme)
        files[family.readme] = replace_section(readme, render_section(family, measurements), family.readme)
        files[family.metafile] = render_metafile(family, measurements)
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


def check(families, root: str = REPO, jobs: int = 1) -> List[str]:
    """Everything wrong with the committed tables: stale or missing files, and undocumented deviations."""
    measurements = measure_families(families, jobs)
    return (stale_files(expected_files(families, measurements, root), root)
            + published_problems(families, measurements))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', choices=list(FAMILY_BY_KEY), default=list(FAMILY_BY_KEY),
                        help='model folders under configs/ (default: all)')
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 listing what is stale or off by more than 1%%')
    parser.add_argument('--out-dir', default=REPO, help='tree to write to or check (default: this repository)')
    parser.add_argument('--jobs', type=int, default=1, help='count the variants in this many processes (default 1)')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    families = [FAMILY_BY_KEY[key] for key in args.models]
    if args.check:
        problems = check(families, args.out_dir, args.jobs)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f'model zoo: {len(problems)} problem(s)' if problems else 'model zoo: up to date')
        return 1 if problems else 0
    measurements = measure_families(families, args.jobs)
    write_files(expected_files(families, measurements, args.out_dir), args.out_dir)
    for problem in published_problems(families, measurements):
        print(problem, file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
