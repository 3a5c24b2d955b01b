"""Small, deterministic datasets of drawn shapes for the embedded demo (nothing to download).

``ensure_demo_data()`` writes three datasets under ``data/demo/`` the first time it is called, and again only when
the generator's version changes or ``force=True``:

* ``cls/``: ImageNet-style folders (``train/<class>/*.jpg``, ``val/<class>/*.jpg``) for mmpretrain's
  ``CustomDataset``; 64x64 images of one shape each, four classes (circle, square, triangle, cross).
* ``coco/``: COCO instances (``annotations/instances_{train,val}.json``, images in ``train/`` and ``val/``);
  160x160 images with 1 to 4 non-overlapping shapes of three classes (circle, square, triangle), each with a box
  (xywh), a polygon, its area and ``iscrowd=0``.
* ``ade/``: ADE20K-style pairs (``images/{training,validation}/*.jpg``, ``annotations/{training,validation}/*.png``);
  128x128 images with 1 to 4 shapes, single-channel label maps with ADE20K's convention: 0 is "other" (ignored
  through ``reduce_zero_label=True``; every pixel is labelled here, so it does not occur), 1 is the background and
  2..4 are circle, square and triangle, giving the four classes ``SEG_CLASSES``.

Only numpy and PIL are used, with fixed seeds, so the files are byte-identical from run to run (for a given PIL
build: JPEG and PNG encoders are deterministic). Generation takes a few seconds.
"""
import hashlib
import json
import os
import os.path as osp
import shutil
from contextlib import contextmanager
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

__all__ = ['ensure_demo_data', 'generate_demo_data', 'CLS_CLASSES', 'DET_CLASSES', 'SEG_CLASSES',
           'DEMO_DATA_VERSION', 'DEFAULT_ROOT']

DEMO_DATA_VERSION = '1'
DEFAULT_ROOT = 'data/demo'
MARKER = '.demo_data_version'
SEED = 20231126

CLS_CLASSES = ('circle', 'square', 'triangle', 'cross')
DET_CLASSES = ('circle', 'square', 'triangle')
SEG_CLASSES = ('background', 'circle', 'square', 'triangle')  # label-map values 1..4; 0 = other (ignored)

# name: (image size, images per split); changing any of these changes the marker, so data is regenerated
SPEC = dict(
    cls=dict(size=64, train_per_class=500, val_per_class=50, radius=(0.28, 0.45)),
    coco=dict(size=160, train=400, val=100, max_objects=4, radius=(0.09, 0.2)),
    ade=dict(size=128, train=400, val=100, max_objects=4, radius=(0.15, 0.3)),
)


# --- drawing ----------------------------------------------------------------------------------------------------
def shape_polygon(kind: str, cx: float, cy: float, radius: float, angle: float) -> List[Tuple[float, float]]:
    """Vertices of a shape centred on (cx, cy) whose corners lie at ``radius`` from the centre."""
    if kind == 'circle':
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * radius
    else:
        if kind == 'square':
            t = np.array([0.25, 0.75, 1.25, 1.75]) * np.pi
            pts = np.stack([np.cos(t), np.sin(t)], 1) * radius
        elif kind == 'triangle':
            t = np.array([-0.5, 1 / 6, 5 / 6]) * np.pi
            pts = np.stack([np.cos(t), np.sin(t)], 1) * radius
        elif kind == 'cross':
            a, b = radius * 0.3, radius * 0.85  # arm half-width and half-length
            pts = np.array([(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a),
                            (-b, a), (-b, -a), (-a, -a)])
        else:
            raise ValueError(f'unknown shape {kind!r}')
        c, s = np.cos(angle), np.sin(angle)
        pts = pts @ np.array([[c, s], [-s, c]])
    pts = pts + np.array([cx, cy])
    return [(round(float(x), 2), round(float(y), 2)) for x, y in pts]


def _background(rng: np.random.Generator, size: int, noise: float = 8.) -> np.ndarray:
    """A noisy two-colour gradient, different for every image."""
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    if rng.random() < 0.5:
        ramp = np.linspace(0, 1, size)[None, :, None]
    else:
        ramp = np.linspace(0, 1, size)[:, None, None]
    img = c0 * (1 - ramp) + c1 * ramp
    img = np.broadcast_to(img, (size, size, 3)) + rng.normal(0, noise, (size, size, 3))
    return np.clip(img, 0, 255)


def _contrasting_colour(rng: np.random.Generator, image: np.ndarray, poly) -> Tuple[int, int, int]:
    """A random colour clearly different from the mean background under the shape."""
    xs = [int(p[0]) for p in poly]
    ys = [int(p[1]) for p in poly]
    h, w = image.shape[:2]
    patch = image[max(min(ys), 0):min(max(ys) + 1, h), max(min(xs), 0):min(max(xs) + 1, w)]
    mean = patch.reshape(-1, 3).mean(0) if patch.size else np.full(3, 128.)
    for _ in range(100):
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - mean).sum() > 180:
            break
    return tuple(int(c) for c in colour)


def _add_noise(rng, canvas: Image.Image, noise: float = 4.) -> Image.Image:
    """Sensor-like noise over the whole image, shapes included."""
    arr = np.asarray(canvas, dtype=np.float64) + rng.normal(0, noise, (canvas.height, canvas.width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8))


def _place_shapes(rng, size: int, num: int, kinds: Sequence[str], r_range: Tuple[float, float]):
    """Up to ``num`` non-overlapping (kind, cx, cy, radius, angle), each fully inside the image."""
    placed = []
    for _ in range(num):
        for _attempt in range(50):
            r = float(rng.uniform(*r_range)) * size
            cx, cy = (float(v) for v in rng.uniform(r + 2, size - r - 2, 2))
            if all((cx - x) ** 2 + (cy - y) ** 2 > (r + pr + 3) ** 2 for _, x, y, pr, _ in placed):
                kind = kinds[int(rng.integers(len(kinds)))]
                placed.append((kind, cx, cy, r, float(rng.uniform(0, 2 * np.pi))))
                break
    return placed


def _polygon_area(poly) -> float:
    x = np.array([p[0] for p in poly])
    y = np.array([p[1] for p in poly])
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


# --- the three datasets ----------------------------------------------------------------------------------------
def _make_cls(root: str, rng: np.random.Generator) -> None:
    spec = SPEC['cls']
    size = spec['size']
    for split, per_class in (('train', spec['train_per_class']), ('val', spec['val_per_class'])):
        for label, kind in enumerate(CLS_CLASSES):
            folder = osp.join(root, split, kind)
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                bg = _background(rng, size)
                r = float(rng.uniform(*spec['radius'])) * size
                cx, cy = (float(v) for v in rng.uniform(r + 1, size - r - 1, 2))
                poly = shape_polygon(kind, cx, cy, r, float(rng.uniform(0, 2 * np.pi)))
                canvas = Image.fromarray(bg.round().astype(np.uint8))
                ImageDraw.Draw(canvas).polygon(poly, fill=_contrasting_colour(rng, bg, poly))
                _add_noise(rng, canvas).save(osp.join(folder, f'{kind}_{i:04d}.jpg'), quality=92)


def _make_coco(root: str, rng: np.random.Generator) -> None:
    spec = SPEC['coco']
    size = spec['size']
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    categories = [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(DET_CLASSES)]
    ann_id = 1
    for split in ('train', 'val'):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(spec[split]):
            file_name = f'{split}_{i:05d}.jpg'
            image_id = len(images) + 1
            bg = _background(rng, size)
            canvas = Image.fromarray(bg.round().astype(np.uint8))
            draw = ImageDraw.Draw(canvas)
            num = int(rng.integers(1, spec['max_objects'] + 1))
            for kind, cx, cy, r, angle in _place_shapes(rng, size, num, DET_CLASSES, spec['radius']):
                poly = shape_polygon(kind, cx, cy, r, angle)
                draw.polygon(poly, fill=_contrasting_colour(rng, bg, poly))
                xs, ys = [p[0] for p in poly], [p[1] for p in poly]
                x0, y0 = min(xs), min(ys)
                annotations.append(dict(
                    id=ann_id, image_id=image_id, category_id=DET_CLASSES.index(kind) + 1,
                    bbox=[round(x0, 2), round(y0, 2), round(max(xs) - x0, 2), round(max(ys) - y0, 2)],
                    segmentation=[[c for p in poly for c in p]], area=round(_polygon_area(poly), 2), iscrowd=0))
                ann_id += 1
            _add_noise(rng, canvas).save(osp.join(root, split, file_name), quality=92)
            images.append(dict(id=image_id, file_name=file_name, width=size, height=size))
        coco = dict(info=dict(description=f'mixformer_mm demo shapes ({split})', version=DEMO_DATA_VERSION),
                    licenses=[], images=images, annotations=annotations, categories=categories)
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w', encoding='utf-8') as f:
            json.dump(coco, f, sort_keys=True)


def _make_ade(root: str, rng: np.random.Generator) -> None:
    spec = SPEC['ade']
    size = spec['size']
    for split, ade_split in (('train', 'training'), ('val', 'validation')):
        img_dir = osp.join(root, 'images', ade_split)
        ann_dir = osp.join(root, 'annotations', ade_split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(spec[split]):
            bg = _background(rng, size)
            canvas = Image.fromarray(bg.round().astype(np.uint8))
            label = Image.new('L', (size, size), SEG_CLASSES.index('background') + 1)
            draw, draw_label = ImageDraw.Draw(canvas), ImageDraw.Draw(label)
            num = int(rng.integers(1, spec['max_objects'] + 1))
            for kind, cx, cy, r, angle in _place_shapes(rng, size, num, SEG_CLASSES[1:], spec['radius']):
                poly = shape_polygon(kind, cx, cy, r, angle)
                draw.polygon(poly, fill=_contrasting_colour(rng, bg, poly))
                draw_label.polygon(poly, fill=SEG_CLASSES.index(kind) + 1)
            name = f'ADE_{ade_split}_{i:08d}'
            _add_noise(rng, canvas).save(osp.join(img_dir, name + '.jpg'), quality=92)
            label.save(osp.join(ann_dir, name + '.png'), optimize=False)


# --- entry points ----------------------------------------------------------------------------------------------
def _fingerprint() -> str:
    text = json.dumps(dict(version=DEMO_DATA_VERSION, seed=SEED, spec=SPEC, cls=CLS_CLASSES, det=DET_CLASSES,
                           seg=SEG_CLASSES), sort_keys=True)
    return f'{DEMO_DATA_VERSION} {hashlib.sha256(text.encode()).hexdigest()[:16]}'


def _paths(root: str) -> Dict[str, str]:
    return dict(
        root=root,
        cls=osp.join(root, 'cls'),
        coco=osp.join(root, 'coco'),
        coco_train_ann=osp.join(root, 'coco', 'annotations', 'instances_train.json'),
        coco_val_ann=osp.join(root, 'coco', 'annotations', 'instances_val.json'),
        ade=osp.join(root, 'ade'),
    )


@contextmanager
def _lock(root: str):
    """Serialise concurrent generators (e.g. parallel test processes) on a lock file next to ``root``."""
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        yield
        return
    with open(osp.join(parent, f'.{osp.basename(osp.abspath(root))}.lock'), 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def is_up_to_date(root: str = DEFAULT_ROOT) -> bool:
    marker = osp.join(root, MARKER)
    if not osp.isfile(marker):
        return False
    with open(marker, encoding='utf-8') as f:
        return f.read().strip() == _fingerprint()


def generate_demo_data(root: str) -> Dict[str, str]:
    """Write the three datasets into ``root`` (replacing ``cls``, ``coco`` and ``ade`` there), unconditionally."""
    os.makedirs(root, exist_ok=True)
    tmp = osp.join(root, f'.tmp-{os.getpid()}')
    shutil.rmtree(tmp, ignore_errors=True)
    marker = osp.join(root, MARKER)
    if osp.exists(marker):
        os.remove(marker)
    # one independent stream per dataset, so that changing one leaves the others' bytes unchanged
    streams = np.random.SeedSequence(SEED).spawn(3)
    for (name, make), seq in zip((('cls', _make_cls), ('coco', _make_coco), ('ade', _make_ade)), streams):
        make(osp.join(tmp, name), np.random.default_rng(seq))
    for name in ('cls', 'coco', 'ade'):
        shutil.rmtree(osp.join(root, name), ignore_errors=True)
        os.replace(osp.join(tmp, name), osp.join(root, name))
    shutil.rmtree(tmp, ignore_errors=True)
    with open(marker, 'w', encoding='utf-8') as f:
        f.write(_fingerprint() + '\n')
    return _paths(root)


def ensure_demo_data(root: str = DEFAULT_ROOT, force: bool = False) -> Dict[str, str]:
    """Generate the demo datasets under ``root`` unless they are already there (same version); return their paths.

    Returns a dict with ``root``, ``cls``, ``coco``, ``coco_train_ann``, ``coco_val_ann`` and ``ade``.
    """
    root = osp.normpath(root)
    if not force and is_up_to_date(root):
        return _paths(root)
    with _lock(root):
        if not force and is_up_to_date(root):  # another process finished it while we waited
            return _paths(root)
        return generate_demo_data(root)
