"""tools/analysis_tools/model_zoo.py: the committed model-zoo tables and metafiles are current, and every published
params/FLOPs figure is matched within 1% or carries its documented reason.

Counting all 17 variants (the 800x1280 backbones above all) takes minutes on one CPU thread, so the module measures
them once, in two processes, and every test here shares that.
"""
import importlib.util
import os
import sys

import pytest
import torch
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location('model_zoo', os.path.join(REPO, 'tools/analysis_tools/model_zoo.py'))
model_zoo = importlib.util.module_from_spec(_spec)
sys.modules['model_zoo'] = model_zoo  # the processes of --jobs find their work function by module name
_spec.loader.exec_module(model_zoo)

REGENERATE = 'python tools/analysis_tools/model_zoo.py'


@pytest.fixture(scope='module')
def measurements():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one image at a time: on a busy machine more threads are slower, not faster
    try:
        # model_zoo.measure caches per variant, so main() and check() below reuse these counts
        yield model_zoo.measure_families(model_zoo.FAMILIES, jobs=2)
    finally:
        torch.set_num_threads(threads)


def test_committed_tables_and_metafiles_are_current(measurements):
    expected = model_zoo.expected_files(model_zoo.FAMILIES, measurements, REPO)
    problems = model_zoo.stale_files(expected, REPO)
    assert not problems, '\n'.join(problems) + f'\nregenerate with: {REGENERATE}'


def test_published_figures_are_within_1_percent_or_documented(measurements):
    problems = model_zoo.published_problems(model_zoo.FAMILIES, measurements)
    assert not problems, '\n'.join(problems)


def test_check_command_passes_on_the_repository(measurements, capsys):
    assert model_zoo.main(['--check']) == 0, capsys.readouterr().err
    assert 'up to date' in capsys.readouterr().out


def test_check_fires_on_a_stale_section_or_metafile_and_ignores_hand_written_text(measurements, tmp_path, capsys):
    root = str(tmp_path)
    glmix = model_zoo.FAMILY_BY_KEY['glmix']
    assert model_zoo.main(['--models', 'glmix', '--out-dir', root]) == 0
    assert model_zoo.main(['--models', 'glmix', '--check', '--out-dir', root]) == 0

    readme = tmp_path / glmix.readme
    text = readme.read_text(encoding='utf-8')
    begin, end = text.index(model_zoo.BEGIN), text.index(model_zoo.END)
    stl_flops = f'{measurements["GLNet-STL"].flops / 1e9:.3f}'
    section = text[begin:end]
    assert stl_flops in section

    # hand-written text outside the markers is the authors', never compared
    readme.write_text(text[:begin].replace('GLNet', 'GLNet (edited)') + text[begin:], encoding='utf-8')
    assert model_zoo.main(['--models', 'glmix', '--check', '--out-dir', root]) == 0
    capsys.readouterr()

    # a stale figure inside the markers
    stale = section.replace(f'| {stl_flops} |', '| 4.000 |', 1)
    assert stale != section
    readme.write_text(text[:begin] + stale + text[end:], encoding='utf-8')
    assert model_zoo.main(['--models', 'glmix', '--check', '--out-dir', root]) == 1
    err = capsys.readouterr().err
    assert f'{glmix.readme}: stale' in err and '| 4.000 |' in err and f'| {stl_flops} |' in err

    # a stale metafile, then a missing one
    readme.write_text(text, encoding='utf-8')
    metafile = tmp_path / glmix.metafile
    metafile.write_text(metafile.read_text(encoding='utf-8').replace('FLOPs: 4', 'FLOPs: 5', 1), encoding='utf-8')
    assert model_zoo.main(['--models', 'glmix', '--check', '--out-dir', root]) == 1
    assert f'{glmix.metafile}: stale' in capsys.readouterr().err
    metafile.unlink()
    assert model_zoo.main(['--models', 'glmix', '--check', '--out-dir', root]) == 1
    assert f'{glmix.metafile}: missing' in capsys.readouterr().err


def test_jobs_below_one_are_refused(capsys):
    with pytest.raises(SystemExit):
        model_zoo.main(['--check', '--jobs', '0'])
    assert '--jobs must be at least 1, got 0' in capsys.readouterr().err


def test_a_readme_without_its_markers_is_refused(tmp_path):
    with pytest.raises(ValueError, match='model-zoo:begin'):
        model_zoo.replace_section('# Title\n\nno markers\n', 'section', 'README.md')


def test_deviation_over_1_percent_is_a_problem_unless_documented():
    published = model_zoo.Published(10.0, '10M', 'paper')
    documented = model_zoo.Published(10.0, '10M', 'paper', exception='the paper rounds')

    def comparison(measured, figure):
        return model_zoo.Comparison('X', 'params', measured, figure)

    assert comparison(10.1, published).problem is None  # exactly 1%
    assert comparison(10.1, published).status == 'matches (≤1%)'
    assert 'off by more than 1%' in comparison(10.2, published).problem
    assert comparison(9.8, published).status.startswith('OFF BY MORE THAN 1%')
    assert comparison(10.2, documented).problem is None
    assert comparison(10.2, documented).status == 'documented exception: the paper rounds'
    # an exception that is no longer needed is reported, so the table never carries a stale excuse
    assert 'remove its documented exception' in comparison(10.05, documented).problem
    assert model_zoo.Comparison('X', 'params', 10.0, None).status == 'not published'


def test_known_mismatches_are_documented_exceptions(measurements):
    rows = {(c.variant, c.figure): c for family in model_zoo.FAMILIES for variant in family.variants
            for c in model_zoo.compare(variant, measurements[variant.name])}
    for key in [('GroupMixFormer-L', 'params'), ('GroupMixFormer-L', 'FLOPs'), ('GroupMixFormer-M', 'FLOPs'),
                ('GLNet-STL (param. slots)', 'params')]:
        assert rows[key].status.startswith('documented exception: '), key
    # no paper figure of DGT or MAFormer is known: nothing of theirs may be presented as published
    for key in ('dgt', 'maformer'):
        for variant in model_zoo.FAMILY_BY_KEY[key].variants:
            assert variant.params is None and variant.flops is None and variant.top1 is None


def test_metafiles_are_a_valid_model_index():
    with open(os.path.join(REPO, 'model-index.yml'), encoding='utf-8') as f:
        index = yaml.safe_load(f)
    assert index == {'Import': [family.metafile for family in model_zoo.FAMILIES]}
    names = set()
    for family in model_zoo.FAMILIES:
        with open(os.path.join(REPO, family.metafile), encoding='utf-8') as f:
            meta = yaml.safe_load(f)
        (collection, ) = meta['Collections']
        assert collection['Name'] == family.collection
        assert os.path.isfile(os.path.join(REPO, collection['README']))
        assert os.path.isfile(os.path.join(REPO, collection['Code']['URL']))
        assert collection['Paper']['URL'].startswith('https://arxiv.org/abs/')
        for model in meta['Models']:
            assert model['In Collection'] == family.collection and 'Weights' not in model
            assert os.path.isfile(os.path.join(REPO, model['Config']))
            assert model['Name'] == os.path.splitext(os.path.basename(model['Config']))[0]
            assert isinstance(model['Metadata']['FLOPs'], int) and isinstance(model['Metadata']['Parameters'], int)
            assert model['Name'] not in names
            names.add(model['Name'])
            if family.key in ('dgt', 'maformer'):
                assert model['Results'] == []  # no result of theirs is known
    assert len(names) == sum(len(family.variants) for family in model_zoo.FAMILIES)


def test_model_index_loads_with_the_loader_mim_uses():
    modelindex = pytest.importorskip('modelindex')
    index = modelindex.load(os.path.join(REPO, 'model-index.yml'))
    errors = index.check(silent=True)
    # modelindex looks for a README relative to the metafile's folder; OpenMMLab's metafiles, and so ours, give it
    # from the repository root (checked in test_metafiles_are_a_valid_model_index). Everything else must pass.
    errors = [] if errors is True else [error for error in errors if 'Path to README file' not in error]
    assert not errors, errors
    # what `mim search` reads of each model
    collections = {collection.name for collection in index.collections}
    assert collections == {family.collection for family in model_zoo.FAMILIES}
    for model in index.models:
        assert model.in_collection in collections
        assert model.metadata.flops > 0 and model.metadata.parameters > 0
        for result in model.results:  # mim iterates this: it must be a list, if an empty one
            assert result.dataset == 'ImageNet-1k' and set(result.metrics) == {'Top 1 Accuracy'}
        assert os.path.isfile(os.path.join(REPO, model.config))
    assert len(index.models) == sum(len(family.variants) for family in model_zoo.FAMILIES)
