"""COCO config names say what mmdet's names say: `ms-crop-3x` for its multi-scale training with the DETR-style random
crop (mmdet's swin/*_ms-crop-3x_coco.py), `ms-3x` for multi-scale resizing without a crop, `1x` for 12 epochs."""
from pathlib import Path

import pytest

from tests.config_checks import ROOT, config_id, load_config

CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*_coco.py') if '_base_' not in p.parts)


def _types(transforms) -> list:
    """The transform types of a pipeline, those inside RandomChoice/RandomApply included."""
    types = []
    for t in transforms:
        if isinstance(t, (list, tuple)):
            types += _types(t)
        else:
            types.append(t['type'])
            types += _types(t.get('transforms', []))
    return types


def test_configs_are_found():
    assert len(CONFIGS) >= 30, CONFIGS


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_name_says_schedule_and_pipeline(path):
    cfg = load_config(path)
    name = Path(path).name
    types = _types(cfg.train_dataloader.dataset.pipeline)
    multi_scale = 'RandomChoiceResize' in types or any(
        t['type'] == 'RandomResize' for t in cfg.train_dataloader.dataset.pipeline)
    if '_ms-crop-3x_' in name:
        assert multi_scale and 'RandomCrop' in types, f'{path}: {types}'
    elif '_ms-3x_' in name:
        assert multi_scale and 'RandomCrop' not in types, f'{path}: a random crop makes it ms-crop-3x: {types}'
    else:
        assert '_1x_' in name, path
        assert not multi_scale and 'RandomCrop' not in types, f'{path}: {types}'
    assert cfg.train_cfg.max_epochs == (36 if '3x' in name else 12)
