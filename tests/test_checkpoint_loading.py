"""Pretrained init_cfg, the official-checkpoint converter and resuming mmengine checkpoints under weights_only."""
import os
import subprocess
import sys

import pytest
import torch

from mixformer_mm.converters import convert_groupmixformer
from mixformer_mm.models.backbones import GroupMixFormer
from tests.reference import groupmixformer_functional as reference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(embed_dims=[20, 40, 40, 40], depths=[1, 2, 1, 1], mlp_ratios=[2, 2, 2, 2])


def _official(arch, dtype=torch.float32, seed=0):
    s = GroupMixFormer.arch_zoo[arch] if isinstance(arch, str) else arch
    return reference.synthesize_official_state_dict(s['embed_dims'], s['depths'], s['mlp_ratios'], seed=seed,
                                                    dtype=dtype)


def test_pretrained_init_cfg_with_prefix_loads_everything(tmp_path):
    converted = convert_groupmixformer(_official(TINY))
    path = tmp_path / 'cls.pth'
    torch.save({'state_dict': converted, 'meta': {}}, path)
    model = GroupMixFormer(arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    model.init_weights()
    state = model.state_dict()
    for key, value in state.items():
        assert torch.equal(value, converted['backbone.' + key]), key


def test_pretrained_backbone_only_checkpoint(tmp_path):
    backbone_only = convert_groupmixformer(_official(TINY), backbone_only=True)
    assert not any(k.startswith(('backbone.', 'head.', 'final_norm.')) for k in backbone_only)
    path = tmp_path / 'backbone.pth'
    torch.save(backbone_only, path)
    model = GroupMixFormer(arch=TINY, frozen_stages=1, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert torch.equal(model.stem[0].conv.weight, backbone_only['stem.0.conv.weight'])
    assert not model.stem[0].conv.weight.requires_grad  # freezing survives the loading


def test_pretrained_of_another_variant_is_refused_by_name(tmp_path):
    path = tmp_path / 'm.pth'
    torch.save(convert_groupmixformer(_official('m'), backbone_only=True), path)
    model = GroupMixFormer(arch='t', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(KeyError, match=r'does not fit GroupMixFormer.*(missing keys|shape mismatches).*stem'):
        model.init_weights()


def test_pretrained_with_wrong_prefix_is_refused(tmp_path):
    path = tmp_path / 'b.pth'
    torch.save(convert_groupmixformer(_official(TINY), backbone_only=True), path)
    model = GroupMixFormer(arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    with pytest.raises(KeyError, match="no key of checkpoint .* starts with prefix 'backbone.'"):
        model.init_weights()


def test_converter_rejects_unknown_keys():
    official = _official(TINY)
    official['cls_token1'] = torch.zeros(1)
    with pytest.raises(KeyError, match='cls_token1'):
        convert_groupmixformer(official)


def _run_converter(*args):
    return subprocess.run([sys.executable, 'tools/model_converters/groupmixformer2mmpretrain.py', *args],
                          cwd=REPO, capture_output=True, text=True)


def test_converter_cli_writes_checkpoint_that_loads_strictly_into_imagenet_config(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    src = tmp_path / 'groupmixformer_miny.pth'
    torch.save({'model': {'module.' + k: v for k, v in _official('m').items()}}, src)
    result = _run_converter(str(src), str(tmp_path / 'out.pth'))
    assert result.returncode == 0, result.stderr
    assert 'GroupMixFormer-M' in result.stdout

    cfg = Config.fromfile(os.path.join(REPO, 'configs/groupmixformer/groupmixformer-m_8xb64_in1k.py'))
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    checkpoint = torch.load(tmp_path / 'out.pth', map_location='cpu')
    model.load_state_dict(checkpoint['state_dict'], strict=True)

    result = _run_converter(str(src), str(tmp_path / 'backbone.pth'), '--backbone-only')
    assert result.returncode == 0, result.stderr
    backbone = GroupMixFormer(arch='m')
    backbone.load_state_dict(torch.load(tmp_path / 'backbone.pth')['state_dict'], strict=True)


def test_converter_cli_reports_mismatched_keys_by_name(tmp_path):
    official = _official('m')
    del official['groupmixformer_backbone.2.gma_stage.3.mlp.fc1.weight']
    src = tmp_path / 'broken.pth'
    torch.save({'model': official}, src)
    result = _run_converter(str(src), str(tmp_path / 'out.pth'))
    assert result.returncode != 0
    assert 'stages.2.blocks.3.ffn.layers.0.0.weight' in result.stderr
    assert not (tmp_path / 'out.pth').exists()


@pytest.fixture
def http_root(tmp_path):
    """A folder served over HTTP on 127.0.0.1 (a thread of this process); yields (folder, base URL)."""
    import functools
    import http.server
    import threading

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    root = tmp_path / 'www'
    root.mkdir()
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                             functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f'http://127.0.0.1:{server.server_port}'
    server.shutdown()
    thread.join()


def _offline_env(tmp_path):
    """The converter's environment: a private torch.hub cache, and no proxy between it and 127.0.0.1."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ('http_proxy', 'https_proxy', 'all_proxy')}
    return dict(env, TORCH_HOME=str(tmp_path / 'torch_home'), NO_PROXY='127.0.0.1', no_proxy='127.0.0.1')


@pytest.mark.parametrize('converter', ['groupmixformer2mmpretrain.py', 'glnet2mmpretrain.py'])
def test_converters_read_an_http_url_as_they_read_a_path(converter, tmp_path, http_root):
    root, base_url = http_root
    if converter.startswith('glnet'):
        from tests.reference import glnet_functional as glnet_reference
        official = glnet_reference.synthesize_official_checkpoint(glnet_reference.OFFICIAL_ARCHS['glnet_stl'], seed=2)
    else:
        official = {'model': _official('m')}
    torch.save(official, root / 'official.pth')
    env = _offline_env(tmp_path)

    def run(*args):
        return subprocess.run([sys.executable, f'tools/model_converters/{converter}', *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)

    from_path, from_url = tmp_path / 'from_path.pth', tmp_path / 'from_url.pth'
    assert run(str(root / 'official.pth'), str(from_path)).returncode == 0
    result = run(f'{base_url}/official.pth', str(from_url))
    assert result.returncode == 0, result.stderr
    cached = tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'official.pth'
    assert cached.is_file()  # in torch.hub's cache, where mmengine's CheckpointLoader keeps http(s) files
    expected, got = (torch.load(p, weights_only=True) for p in (from_path, from_url))
    assert got['meta']['converted_from'] == f'{base_url}/official.pth'
    assert expected['state_dict'].keys() == got['state_dict'].keys()
    assert all(torch.equal(expected['state_dict'][k], v) for k, v in got['state_dict'].items())

    missing = run(f'{base_url}/no_such.pth', str(tmp_path / 'never.pth'))
    assert missing.returncode != 0
    assert f'cannot download {base_url}/no_such.pth' in missing.stderr and '404' in missing.stderr
    assert not (tmp_path / 'never.pth').exists()
    assert not (tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'no_such.pth').exists()


def test_mmengine_checkpoint_with_message_hub_loads_under_weights_only(tmp_path):
    import numpy as np
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint

    hub = MessageHub.get_instance('test_weights_only')
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_info('iter', 7)
    model = torch.nn.Linear(2, 2)
    checkpoint = {'meta': {'iter': 7, 'seed': np.int64(3)}, 'state_dict': model.state_dict(),
                  'message_hub': hub.state_dict(), 'optimizer': torch.optim.AdamW(model.parameters()).state_dict()}
    path = str(tmp_path / 'iter_7.pth')
    save_checkpoint(checkpoint, path)
    loaded = load_checkpoint(torch.nn.Linear(2, 2), path)  # mmengine's plain torch.load call
    assert loaded['meta']['iter'] == 7
    restored = MessageHub.get_instance('restored')
    restored.load_state_dict(loaded['message_hub'])
    assert restored.get_scalar('train/loss').current() == 0.5


class _SneakyGetattr:
    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return getattr, (HistoryBuffer, '__init__')


def test_weights_only_still_refuses_other_getattr(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _SneakyGetattr()}, path)
    with pytest.raises(Exception, match="refusing getattr"):
        torch.load(path)
