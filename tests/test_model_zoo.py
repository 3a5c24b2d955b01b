"""tools/analysis_tools/model_zoo.py: the committed model-zoo tables, metafiles and measured cache are current, every
published params/FLOPs figure is matched within 1% or carries its documented reason, and the model index holds every
config of the four models.

Counting the 17 ImageNet variants (the 800x1280 backbones above all) takes minutes on one CPU thread, so the module
measures them once, in two processes, and every test here shares that; likewise the COCO/ADE20K configs of
model_zoo.SPOT_CHECK, the ones --check recounts (the others are checked against the model digest of their cached
entry).
"""
import copy
import importlib.util
import os
import shutil
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
GLNET_SPOT = 'fpn_glnet-4g_8xb4-80k_ade20k-512x512'  # glnet's config in model_zoo.SPOT_CHECK


@pytest.fixture(scope='module')
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one image at a time: on a busy machine more threads are slower, not faster
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def measurements(one_thread):
    # model_zoo.measure caches per variant, so main() and check() below reuse these counts
    return model_zoo.measure_families(model_zoo.FAMILIES, jobs=2)


@pytest.fixture(scope='module')
def dense(one_thread):
    """(costs per family, problems) of the committed cache, with the SPOT_CHECK configs recounted (cached in the
    module for main() and check() below)."""
    return model_zoo.all_dense_costs(model_zoo.FAMILIES, REPO, 'spot', jobs=2)


def test_committed_tables_and_metafiles_are_current(measurements, dense):
    costs, _ = dense
    expected = model_zoo.expected_files(model_zoo.FAMILIES, measurements, REPO, costs)
    problems = model_zoo.stale_files(expected, REPO)
    assert not problems, '\n'.join(problems) + f'\nregenerate with: {REGENERATE}'


def test_dense_cache_fits_every_config_and_the_spot_checks_recount_it(dense):
    costs, problems = dense
    assert not problems, '\n'.join(problems)
    for family in model_zoo.FAMILIES:
        names = {os.path.splitext(os.path.basename(config))[0] for config in family.dense_configs}
        assert set(costs[family.key]) == names
    spot = {config: model_zoo.describe(config) for config in model_zoo.SPOT_CHECK}
    assert {d.dataset for d in spot.values()} == {'COCO', 'ADE20K'}
    assert {config.split('/')[1] for config in spot} == set(model_zoo.FAMILY_KEYS)  # every backbone at a dense size


def test_published_figures_are_within_1_percent_or_documented(measurements):
    problems = model_zoo.published_problems(model_zoo.FAMILIES, measurements)
    assert not problems, '\n'.join(problems)


def test_check_command_passes_on_the_repository(measurements, dense, capsys):
    assert model_zoo.main(['--check']) == 0, capsys.readouterr().err
    assert 'up to date' in capsys.readouterr().out


def _copy_family(tmp_path, family):
    for path in ('model-index.yml', family.readme, family.metafile, family.dense_cache):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(REPO, path), tmp_path / path)


def test_check_fires_on_a_stale_section_or_metafile_and_ignores_hand_written_text(
        measurements, dense, tmp_path, capsys):
    root = str(tmp_path)
    glnet = model_zoo.FAMILY_BY_KEY['glnet']
    assert model_zoo.main(['--models', 'glnet', '--out-dir', root]) == 0
    assert model_zoo.main(['--models', 'glnet', '--check', '--out-dir', root]) == 0

    readme = tmp_path / glnet.readme
    text = readme.read_text(encoding='utf-8')
    begin, end = text.index(model_zoo.BEGIN), text.index(model_zoo.END)
    stl_flops = f'{measurements["GLNet-STL"].flops / 1e9:.3f}'
    section = text[begin:end]
    assert stl_flops in section

    # hand-written text outside the markers is the authors', never compared
    readme.write_text(text[:begin].replace('GLNet', 'GLNet (edited)') + text[begin:], encoding='utf-8')
    assert model_zoo.main(['--models', 'glnet', '--check', '--out-dir', root]) == 0
    capsys.readouterr()

    # a stale figure inside the markers
    stale = section.replace(f'| {stl_flops} |', '| 4.000 |', 1)
    assert stale != section
    readme.write_text(text[:begin] + stale + text[end:], encoding='utf-8')
    assert model_zoo.main(['--models', 'glnet', '--check', '--out-dir', root]) == 1
    err = capsys.readouterr().err
    assert f'{glnet.readme}: stale' in err and '| 4.000 |' in err and f'| {stl_flops} |' in err

    # a stale metafile, then a missing one
    readme.write_text(text, encoding='utf-8')
    metafile = tmp_path / glnet.metafile
    metafile.write_text(metafile.read_text(encoding='utf-8').replace('FLOPs: 4', 'FLOPs: 5', 1), encoding='utf-8')
    assert model_zoo.main(['--models', 'glnet', '--check', '--out-dir', root]) == 1
    assert f'{glnet.metafile}: stale' in capsys.readouterr().err
    metafile.unlink()
    assert model_zoo.main(['--models', 'glnet', '--check', '--out-dir', root]) == 1
    assert f'{glnet.metafile}: missing' in capsys.readouterr().err


def _edit_cache(path, edit):
    data = yaml.safe_load(path.read_text(encoding='utf-8'))
    header = ''.join(line for line in path.read_text(encoding='utf-8').splitlines(True) if line.startswith('#'))
    edit(data)
    path.write_text(header + '\n' + yaml.dump(data, Dumper=model_zoo._IndentedListsDumper, sort_keys=False,
                                              default_flow_style=None, width=120), encoding='utf-8')


def test_check_fires_on_a_stale_missing_or_unfitting_cache_entry(measurements, dense, tmp_path, capsys):
    root = str(tmp_path)
    glnet = model_zoo.FAMILY_BY_KEY['glnet']
    _copy_family(tmp_path, glnet)
    cache = tmp_path / glnet.dense_cache
    committed = cache.read_text(encoding='utf-8')
    assert model_zoo.main(['--models', 'glnet', '--check', '--out-dir', root]) == 0
    capsys.readouterr()

    # a recounted (spot-checked) entry whose figure is off: the recount names both figures
    def off(data):
        data[GLNET_SPOT]['flops'] += 1000
    _edit_cache(cache, off)
    assert model_zoo.main(['--models', 'glnet', '--check', '--out-dir', root]) == 1
    err = capsys.readouterr().err
    flops = dense[0]['glnet'][GLNET_SPOT].flops
    assert f'{GLNET_SPOT} counts' in err and str(flops) in err and str(flops + 1000) in err

    # an entry measured for another model (not recounted by --check: its digest tells)
    other = 'mask-rcnn_glnet-16g_fpn_1x_coco'
    assert f'configs/glnet/{other}.py' not in model_zoo.SPOT_CHECK
    cache.write_text(committed, encoding='utf-8')

    def another_model(data):
        data[other]['digest'] = '0' * 16
    _edit_cache(cache, another_model)
    assert model_zoo.main(['--models', 'glnet', '--check', '--out-dir', root]) == 1
    assert f'{other} builds another model than when it was measured' in capsys.readouterr().err

    # a config without an entry, and an entry without a config
    cache.write_text(committed, encoding='utf-8')

    def missing(data):
        del data[other]
    _edit_cache(cache, missing)
    assert model_zoo.main(['--models', 'glnet', '--check', '--out-dir', root]) == 1
    assert f'{other} was never measured' in capsys.readouterr().err
    cache.write_text(committed, encoding='utf-8')

    def extra(data):
        data['mask-rcnn_glnet-1g_fpn_1x_coco'] = copy.deepcopy(data[other])
    _edit_cache(cache, extra)
    assert model_zoo.main(['--models', 'glnet', '--check', '--out-dir', root]) == 1
    assert f'{glnet.dense_cache}: stale' in capsys.readouterr().err

    # regenerating recounts what no longer fits (here the spot-checked config, counted already) and drops the rest
    cache.write_text(committed, encoding='utf-8')

    def unfit(data):
        data[GLNET_SPOT]['digest'] = '0' * 16
        data[GLNET_SPOT]['flops'] = 1
    _edit_cache(cache, unfit)
    assert model_zoo.main(['--models', 'glnet', '--out-dir', root]) == 0
    assert cache.read_text(encoding='utf-8') == committed


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
        family = model_zoo.FAMILY_BY_KEY[key]
        assert not family.dense_results and not family.official_code
        for variant in family.variants:
            assert variant.params is None and variant.flops is None and variant.top1 is None and not variant.weights


def test_published_figures_come_from_the_yaml_files():
    for family in model_zoo.FAMILIES:
        with open(os.path.join(REPO, family.published_file), encoding='utf-8') as f:
            data = yaml.safe_load(f)
        assert model_zoo._parse_family(family.key, data) == family
        assert [entry['config'] for entry in data['imagenet']] == [variant.config for variant in family.variants]
    # a variant must say where its weights are or why there are none
    data = yaml.safe_load(open(os.path.join(REPO, 'configs/dgt/published.yml'), encoding='utf-8'))
    del data['imagenet'][0]['no_weights']
    with pytest.raises(ValueError, match='DGT-T needs either weights or no_weights'):
        model_zoo._parse_family('dgt', data)


def test_official_checkpoints_are_the_released_ones():
    converted = {variant.name for family in model_zoo.FAMILIES for variant in family.variants if variant.weights}
    assert converted == {'GroupMixFormer-M', 'GroupMixFormer-T', 'GroupMixFormer-S', 'GroupMixFormer-B',
                         'GLNet-STL', 'GLNet-STL (param. slots)', 'GLNet-4G', 'GLNet-9G', 'GLNet-16G'}
    gmf, glnet = model_zoo.FAMILY_BY_KEY['groupmixformer'], model_zoo.FAMILY_BY_KEY['glnet']
    assert gmf.official_code.startswith('https://github.com/AILab-CVC/GroupMixFormer/')
    assert glnet.official_code.startswith('https://github.com/rayleizhu/GLMix/')
    urls = [variant.weights for variant in gmf.variants + glnet.variants if variant.weights]
    assert len(set(urls)) == len(urls)  # GroupMixFormer-L's link is M's: it is not listed as L's weights
    assert all(url.startswith(('https://connecthkuhk-my.sharepoint.com/', 'https://1drv.ms/')) for url in urls)
    assert 'M folder' in gmf.variants[-1].no_weights


def test_published_dense_results_go_into_the_metafile_and_the_table(measurements, dense):
    costs, _ = dense
    glnet = model_zoo.FAMILY_BY_KEY['glnet']
    with open(os.path.join(REPO, glnet.published_file), encoding='utf-8') as f:
        data = yaml.safe_load(f)
    data['dense'] = {'mask-rcnn_glnet-4g_fpn_1x_coco': [
        {'task': 'Object Detection', 'dataset': 'COCO', 'metrics': {'box AP': 12.3}, 'source': 'a test'},
        {'task': 'Instance Segmentation', 'dataset': 'COCO', 'metrics': {'mask AP': 4.5}, 'source': 'a test'}]}
    family = model_zoo._parse_family('glnet', data)
    assert model_zoo.dense_result_problems(family) == []
    meta = model_zoo.metafile_data(family, measurements, costs['glnet'])
    (model, ) = [m for m in meta['Models'] if m['Name'] == 'mask-rcnn_glnet-4g_fpn_1x_coco']
    assert model['Results'] == [
        {'Task': 'Object Detection', 'Dataset': 'COCO', 'Metrics': {'box AP': 12.3}},
        {'Task': 'Instance Segmentation', 'Dataset': 'COCO', 'Metrics': {'mask AP': 4.5}}]
    section = model_zoo.render_section(family, measurements, costs['glnet'])
    (row, ) = [line for line in section.splitlines() if '[mask-rcnn_glnet-4g_fpn_1x_coco]' in line]
    assert '| 12.3 (a test) | 4.5 (a test) |' in row

    # a metric the config's model does not report, and a config that does not exist
    data['dense'] = {'mask-rcnn_glnet-4g_fpn_1x_coco': [
        {'task': 'Semantic Segmentation', 'dataset': 'ADE20K', 'metrics': {'mIoU': 40.0}, 'source': 'a test'}],
        'mask-rcnn_glnet-1g_fpn_1x_coco': []}
    problems = model_zoo.dense_result_problems(model_zoo._parse_family('glnet', data))
    assert len(problems) == 2
    assert 'is a Mask R-CNN on COCO; it has no Semantic Segmentation mIoU on ADE20K' in problems[0]
    assert 'mask-rcnn_glnet-1g_fpn_1x_coco, which is not a config of the folder' in problems[1]


def test_metafiles_are_a_valid_model_index():
    with open(os.path.join(REPO, 'model-index.yml'), encoding='utf-8') as f:
        index = yaml.safe_load(f)
    assert index == {'Import': [family.metafile for family in model_zoo.FAMILIES]}
    names = set()
    tasks = {'COCO': {'Object Detection', 'Instance Segmentation'}, 'ADE20K': {'Semantic Segmentation'},
             'ImageNet-1k': {'Image Classification'}}
    for family in model_zoo.FAMILIES:
        with open(os.path.join(REPO, family.metafile), encoding='utf-8') as f:
            meta = yaml.safe_load(f)
        (collection, ) = meta['Collections']
        assert collection['Name'] == family.collection
        assert os.path.isfile(os.path.join(REPO, collection['README']))
        assert os.path.isfile(os.path.join(REPO, collection['Code']['URL']))
        assert collection['Paper']['URL'].startswith('https://arxiv.org/abs/')
        configs = {variant.config for variant in family.variants} | set(family.dense_configs)
        assert {model['Config'] for model in meta['Models']} == configs  # every config of the folder
        weights = {variant.config: variant.weights for variant in family.variants}
        for model in meta['Models']:
            assert model['In Collection'] == family.collection and 'Weights' not in model
            assert os.path.isfile(os.path.join(REPO, model['Config']))
            assert model['Name'] == os.path.splitext(os.path.basename(model['Config']))[0]
            metadata = model['Metadata']
            assert isinstance(metadata['FLOPs'], int) and isinstance(metadata['Parameters'], int)
            for result in model['Results']:
                assert result['Dataset'] == metadata['Training Data']
                assert result['Task'] in tasks[metadata['Training Data']]
            if weights.get(model['Config']):
                assert model['Converted From'] == {'Weights': weights[model['Config']], 'Code': family.official_code}
            else:
                assert 'Converted From' not in model
            assert model['Name'] not in names
            names.add(model['Name'])
            if family.key in ('dgt', 'maformer') or metadata['Training Data'] != 'ImageNet-1k':
                assert model['Results'] == []  # no result of theirs, and no dense result of any, is known
    assert len(names) == sum(len(family.variants) + len(family.dense_configs) for family in model_zoo.FAMILIES)
    assert sum(len(family.variants) for family in model_zoo.FAMILIES) == 17
    assert sum(len(family.dense_configs) for family in model_zoo.FAMILIES) == 62


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
        assert model.metadata.training_data in ('ImageNet-1k', 'COCO', 'ADE20K')
        for result in model.results:  # mim iterates this: it must be a list, if an empty one
            assert result.dataset == 'ImageNet-1k' and set(result.metrics) == {'Top 1 Accuracy'}
        assert os.path.isfile(os.path.join(REPO, model.config))
    assert len(index.models) == sum(len(family.variants) + len(family.dense_configs) for family in model_zoo.FAMILIES)
