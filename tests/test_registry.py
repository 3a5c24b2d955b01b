"""``type='GroupMixFormer'`` builds from every OpenMMLab scope, and one codebase never needs another."""
import subprocess
import sys

import pytest

SCOPES = {
    'mmpretrain': 'from mmpretrain.registry import MODELS',
    'mmdet': 'from mmdet.registry import MODELS',
    'mmseg': 'from mmseg.registry import MODELS',
}


@pytest.mark.parametrize('scope', sorted(SCOPES))
@pytest.mark.parametrize('type_name', ['GroupMixFormer', 'mixformer_mm.GroupMixFormer'])
def test_builds_under_each_default_scope(scope, type_name):
    # A fresh interpreter in which the other two codebases cannot be imported at all (as if not installed):
    # using mixformer_mm with one codebase must not need the others.
    code = f"""
import importlib, sys
for other in ('mmdet', 'mmseg', 'mmpretrain'):
    if other != '{scope}':
        sys.modules[other] = None  # any import of it raises ImportError
from mmengine.registry import init_default_scope
importlib.import_module('mixformer_mm')
{SCOPES[scope]}
init_default_scope('{scope}')
model = MODELS.build(dict(type='{type_name}', arch='m'))
assert type(model).__name__ == 'GroupMixFormer', type(model)
"""
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_registered_in_root_and_own_scope():
    from mmengine.registry import MODELS as ROOT

    import mixformer_mm  # noqa: F401
    from mixformer_mm.registry import MODELS
    assert ROOT.get('GroupMixFormer') is MODELS.get('GroupMixFormer')
    assert MODELS.scope == 'mixformer_mm'
