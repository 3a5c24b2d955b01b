"""Run a trained classifier, detector or segmentor on images and draw its predictions.

    python demo/image_demo.py IMAGE CONFIG --weights CKPT --out-dir DIR [--device cpu] [--print-result]

The config's ``default_scope`` picks the codebase's Inferencer, as in tools/train.py and tools/test.py:
    mmpretrain  ImageClassificationInferencer: the predicted class and its score written on the image
    mmdet       DetInferencer: boxes, class names, scores and instance masks (``--pred-score-thr``)
    mmseg       MMSegInferencer: the label map blended over the image (``--opacity``), with class names
IMAGE is an image file or a folder of them (not recursive); each drawing goes to DIR/<image name>.png.
The checkpoint must fit the config's model exactly: a missing, unexpected or mis-shaped key is an error that
names them (the Inferencers alone load non-strictly and only warn, which runs a partly random model).
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from mmengine.config import DictAction  # noqa: E402

import mixformer_mm  # noqa: E402,F401  (registers the backbones, makes checkpoints loadable)
from mixformer_mm.engine import (CheckpointError, CheckpointMismatchError, check_checkpoint_fits,  # noqa: E402
                                 check_model_types, load_config)
from mixformer_mm.engine.reliability import check_checkpoint_readable  # noqa: E402

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
TASKS = {'mmpretrain': 'classification', 'mmdet': 'detection', 'mmseg': 'segmentation'}


class DemoError(Exception):
    """A problem with the command line's inputs, reported without a traceback."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw the predictions of a classifier, detector or segmentor')
    parser.add_argument('image', help='image file, or a folder of images')
    parser.add_argument('config', help='config file (mmpretrain, mmdet or mmseg)')
    parser.add_argument('--weights', required=True, help='checkpoint of a model trained with this config')
    parser.add_argument('--out-dir', required=True, help='folder for the drawings, one <image name>.png each')
    parser.add_argument('--device', help='e.g. cpu, cuda:0 (default: cuda:0 when available, else cpu)')
    parser.add_argument('--pred-score-thr', type=float, default=0.3,
                        help='mmdet: draw and print only instances scoring at least this (default 0.3)')
    parser.add_argument('--opacity', type=float, default=0.8,
                        help='mmseg: opacity of the label colours over the image, 0..1 (default 0.8)')
    parser.add_argument('--resize', type=int,
                        help='mmpretrain: draw on a copy whose short edge is this long, for legible text on '
                        'small images (the prediction is made on the image as it is)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.test_cfg.rcnn.score_thr=0.01')
    parser.add_argument('--print-result', action='store_true',
                        help='print each prediction as one line of JSON (image, out_file, task and the prediction)')
    args = parser.parse_args(argv)
    if not 0 <= args.opacity <= 1:
        parser.error(f'--opacity {args.opacity} is not in 0..1')
    return args


def list_images(path: str) -> list:
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise DemoError(f'image {path} does not exist')
    images = sorted(osp.join(path, name) for name in os.listdir(path)
                    if name.lower().endswith(IMAGE_SUFFIXES) and osp.isfile(osp.join(path, name)))
    if not images:
        raise DemoError(f'folder {path} holds no image ({", ".join(IMAGE_SUFFIXES)})')
    return images


def output_files(images: list, out_dir: str) -> list:
    out_files = [osp.join(out_dir, osp.splitext(osp.basename(image))[0] + '.png') for image in images]
    seen = {}
    for image, out_file in zip(images, out_files):
        if out_file in seen:  # a.jpg and a.png would both draw to a.png
            raise DemoError(f'{seen[out_file]} and {image} would both be drawn to {out_file}; run them separately')
        seen[out_file] = image
    return out_files


def _classification_inferencer(cfg, weights: str, device: str):
    # ImageClassificationInferencer loads a checkpoint through get_model -> mmengine's load_checkpoint, which
    # only warns about keys that do not fit; building the model unloaded and loading it here lets the keys be
    # checked first. The classes come from the checkpoint as get_model would take them.
    from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
    from mmpretrain.apis import ImageClassificationInferencer, get_model
    model = get_model(cfg, pretrained=False)
    checkpoint = _load_checkpoint(weights, map_location='cpu')
    check_checkpoint_fits(model, checkpoint, weights, strict=True)
    _load_checkpoint_to_model(model, checkpoint)
    meta = checkpoint.get('meta') or {}
    if 'dataset_meta' in meta:
        model._dataset_meta = meta['dataset_meta']
    elif cfg.get('test_dataloader') and cfg.test_dataloader.dataset.get('metainfo'):
        model._dataset_meta = dict(cfg.test_dataloader.dataset.metainfo)
    return ImageClassificationInferencer(model, pretrained=False, device=device)


def _checked(inferencer_class, weights: str):
    """``inferencer_class`` whose checkpoint must fit the model before its own (non-strict) loading runs."""

    class Checked(inferencer_class):

        def _load_weights_to_model(self, model, checkpoint, cfg):
            check_checkpoint_fits(model, checkpoint, weights, strict=True)
            super()._load_weights_to_model(model, checkpoint, cfg)

    Checked.__name__ = f'Checked{inferencer_class.__name__}'
    return Checked


def build_inferencer(cfg, weights: str, device: str):
    scope = cfg.get('default_scope')
    if scope == 'mmpretrain':
        return _classification_inferencer(cfg, weights, device)
    if scope == 'mmdet':
        from mmdet.apis import DetInferencer
        return _checked(DetInferencer, weights)(model=cfg, weights=weights, device=device, show_progress=False)
    from mmseg.apis import MMSegInferencer
    return _checked(MMSegInferencer, weights)(model=cfg, weights=weights, device=device)


def _write_rgb(image, path: str) -> None:
    import mmcv
    if not mmcv.imwrite(image[..., ::-1], path):  # the Inferencers draw RGB; mmcv writes BGR
        raise OSError(f'could not write {path}')


def _classes(inferencer) -> list:
    meta = getattr(inferencer.model, 'dataset_meta', None) or {}
    return list(meta.get('classes') or [])


def predict_one(inferencer, scope: str, image: str, out_file: str, args) -> dict:
    """Draw the prediction for ``image`` into ``out_file``; return it as plain numbers and arrays."""
    if scope == 'mmpretrain':
        # mmpretrain draws only into a folder (show_dir), as <image stem>.png, which is out_file
        prediction = inferencer(image, show_dir=osp.dirname(out_file), resize=args.resize)[0]
        return dict(pred_label=int(prediction['pred_label']), pred_class=prediction.get('pred_class'),
                    pred_score=float(prediction['pred_score']),
                    pred_scores=[float(s) for s in prediction['pred_scores']])
    if scope == 'mmdet':
        # return_datasamples keeps the masks as arrays (pred2dict would encode them as RLE strings)
        result = inferencer(image, return_vis=True, no_save_vis=True, pred_score_thr=args.pred_score_thr,
                            return_datasamples=True)
        _write_rgb(result['visualization'][0], out_file)
        instances = result['predictions'][0].pred_instances
        keep = instances.scores >= args.pred_score_thr
        masks = instances.masks[keep].cpu().numpy() if 'masks' in instances else None
        return dict(labels=instances.labels[keep].tolist(), scores=instances.scores[keep].tolist(),
                    bboxes=instances.bboxes[keep].tolist(), masks=masks, num_below_thr=int((~keep).sum()))
    result = inferencer(image, return_vis=True, opacity=args.opacity)
    # one input: MMSegInferencer returns the label map and the drawing themselves, not one-element lists
    _write_rgb(result['visualization'], out_file)
    return dict(sem_seg=result['predictions'])


def summary(task: str, prediction: dict, classes: list) -> dict:
    """What --print-result prints: JSON-friendly, masks and label maps reduced to their sizes and areas."""
    import numpy as np

    def name(label):
        return classes[label] if 0 <= label < len(classes) else None

    if task == 'classification':
        return dict(prediction)
    if task == 'detection':
        masks = prediction['masks']
        found = []
        for i, label in enumerate(prediction['labels']):
            found.append(dict(label=label, class_name=name(label), score=round(prediction['scores'][i], 4),
                              bbox=[round(v, 1) for v in prediction['bboxes'][i]]))
            if masks is not None:
                found[-1]['mask_area'] = int(masks[i].sum())
        return dict(instances=found, num_below_thr=prediction['num_below_thr'],
                    mask_shape=list(masks.shape[1:]) if masks is not None else None)
    label_map = prediction['sem_seg']
    labels, counts = np.unique(label_map, return_counts=True)
    return dict(shape=list(label_map.shape),
                pixels={str(name(int(k)) or int(k)): int(n) for k, n in zip(labels, counts)})


def run(args) -> list:
    """Predict and draw every image; return one dict per image (image, out_file, task, prediction)."""
    images = list_images(args.image)
    cfg = load_config(args.config, args.cfg_options)
    check_checkpoint_readable(args.weights)
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise DemoError(f"config {args.config} has default_scope={scope!r}; image_demo.py runs mmpretrain, mmdet "
                        'and mmseg configs')
    check_model_types(cfg)
    if args.resize is not None and scope != 'mmpretrain':
        raise DemoError(f'--resize is for classification configs; {args.config} is an {scope} config')
    out_files = output_files(images, args.out_dir)
    os.makedirs(args.out_dir, exist_ok=True)
    device = args.device
    if device is None:
        import torch
        device = 'cuda:0' if torch.cuda.is_available() else 'cpu'
    inferencer = build_inferencer(cfg, args.weights, device)
    results = []
    for image, out_file in zip(images, out_files):
        # mmpretrain's progress bar goes to stdout with no line end, which would run into the --print-result lines
        with contextlib.redirect_stdout(sys.stderr):
            prediction = predict_one(inferencer, scope, image, out_file, args)
        if not osp.isfile(out_file):
            raise RuntimeError(f'the {scope} Inferencer drew nothing into {out_file}')
        results.append(dict(image=image, out_file=out_file, task=TASKS[scope], prediction=prediction))
    if args.print_result:
        classes = _classes(inferencer)
        for result in results:
            line = dict(result, prediction=summary(result['task'], result['prediction'], classes))
            print(json.dumps(line), flush=True)
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    except (DemoError, FileNotFoundError, CheckpointError, CheckpointMismatchError) as error:
        print(f'image_demo.py: error: {error}', file=sys.stderr)
        return 1
    print(f'{len(results)} drawing(s) in {args.out_dir}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
