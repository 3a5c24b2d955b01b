"""The demo data generator: deterministic, idempotent, and valid for the three codebases' loaders."""
import hashlib
import importlib.util
import json
import os
import os.path as osp
import time

import numpy as np
import pytest
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')  # pycocotools under numpy 2


def _load_demo_data():
    """The generator module, loaded from its file so that this test needs only numpy and PIL (not mmcv)."""
    path = osp.join(REPO, 'mixformer_mm', 'datasets', 'demo_data.py')
    spec = importlib.util.spec_from_file_location('mixformer_mm_demo_data', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo_data = _load_demo_data()


def _hashes(root):
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo_a') / 'demo')
    start = time.perf_counter()
    paths = demo_data.ensure_demo_data(root)
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f'generating the demo data took {elapsed:.1f} s'
    return paths


def test_deterministic(demo_root, tmp_path):
    other = demo_data.ensure_demo_data(str(tmp_path / 'demo'))
    first, second = _hashes(demo_root['root']), _hashes(other['root'])
    assert len(first) > 1000
    assert first == second


def test_idempotent_and_versioned(demo_root, monkeypatch):
    marker = osp.join(demo_root['root'], demo_data.MARKER)
    path = osp.join(demo_root['cls'], 'train', 'circle', 'circle_0000.jpg')
    before = (os.stat(marker).st_mtime_ns, os.stat(path).st_mtime_ns)
    assert demo_data.ensure_demo_data(demo_root['root']) == demo_root
    assert (os.stat(marker).st_mtime_ns, os.stat(path).st_mtime_ns) == before  # nothing rewritten

    hashes = _hashes(demo_root['root'])
    # a stale marker (older generator) makes it regenerate, to the same bytes
    with open(marker, 'w') as f:
        f.write('0 stale\n')
    os.remove(path)
    demo_data.ensure_demo_data(demo_root['root'])
    assert _hashes(demo_root['root']) == hashes
    # force regenerates even when up to date
    os.remove(path)
    with open(marker) as f:
        assert f.read().strip() == demo_data._fingerprint()
    demo_data.ensure_demo_data(demo_root['root'], force=True)
    assert _hashes(demo_root['root']) == hashes


def test_classification_folders(demo_root):
    spec = demo_data.SPEC['cls']
    for split, per_class in (('train', spec['train_per_class']), ('val', spec['val_per_class'])):
        folders = sorted(os.listdir(osp.join(demo_root['cls'], split)))
        assert folders == sorted(demo_data.CLS_CLASSES)
        for name in folders:
            files = sorted(os.listdir(osp.join(demo_root['cls'], split, name)))
            assert len(files) == per_class
            image = Image.open(osp.join(demo_root['cls'], split, name, files[0]))
            assert image.mode == 'RGB' and image.size == (spec['size'], spec['size'])


@pytest.mark.parametrize('split', ['train', 'val'])
def test_coco_valid_for_pycocotools(demo_root, split):
    from pycocotools.coco import COCO
    ann_file = demo_root[f'coco_{split}_ann']
    coco = COCO(ann_file)
    spec = demo_data.SPEC['coco']
    assert len(coco.getImgIds()) == spec[split]
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(demo_data.DET_CLASSES)
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= spec[split]  # at least one object per image, several on average
    assert len({a['id'] for a in anns}) == len(anns)
    counts = np.bincount([a['category_id'] for a in anns], minlength=4)[1:]
    assert counts.min() > 0.2 * len(anns)  # classes roughly balanced
    for image in coco.loadImgs(coco.getImgIds()):
        path = osp.join(demo_root['coco'], split, image['file_name'])
        with Image.open(path) as im:
            assert im.size == (image['width'], image['height'])
    for ann in anns:
        assert ann['iscrowd'] == 0 and len(ann['bbox']) == 4
        mask = coco.annToMask(ann)
        assert mask.shape == (spec['size'], spec['size'])
        ys, xs = np.nonzero(mask)
        x, y, w, h = ann['bbox']
        # the mask fills its box (to rasterisation rounding) and has the stated area
        assert abs(xs.min() - x) <= 1.5 and abs(ys.min() - y) <= 1.5
        assert abs(xs.max() + 1 - (x + w)) <= 1.5 and abs(ys.max() + 1 - (y + h)) <= 1.5
        assert 0.8 < mask.sum() / ann['area'] < 1.2
    # objects do not overlap
    for image_id in coco.getImgIds():
        masks = [coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))]
        assert np.sum(masks, axis=0).max() <= 1


def test_ade_label_maps(demo_root):
    spec = demo_data.SPEC['ade']
    seen = set()
    for split, ade_split in (('train', 'training'), ('val', 'validation')):
        images = sorted(os.listdir(osp.join(demo_root['ade'], 'images', ade_split)))
        labels = sorted(os.listdir(osp.join(demo_root['ade'], 'annotations', ade_split)))
        assert len(images) == len(labels) == spec[split]
        assert [osp.splitext(n)[0] for n in images] == [osp.splitext(n)[0] for n in labels]
        assert all(n.endswith('.jpg') for n in images) and all(n.endswith('.png') for n in labels)
        for name in labels[:40]:
            label = Image.open(osp.join(demo_root['ade'], 'annotations', ade_split, name))
            assert label.mode == 'L' and label.size == (spec['size'], spec['size'])
            values = np.asarray(label)
            assert values.max() <= len(demo_data.SEG_CLASSES)
            seen |= set(np.unique(values).tolist())
    # 1..K are the classes (background first); 0, ADE20K's "other" (ignored), does not occur: every pixel is labelled
    assert seen == set(range(1, len(demo_data.SEG_CLASSES) + 1))


def test_coco_json_is_canonical(demo_root):
    with open(demo_root['coco_val_ann']) as f:
        data = json.load(f)
    assert set(data) >= {'images', 'annotations', 'categories'}
    assert all(a['image_id'] in {i['id'] for i in data['images']} for a in data['annotations'])
