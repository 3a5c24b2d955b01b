"""Show which semantic slot each pixel is dispatched to, for one GLMix block of a GLNet model.

    python tools/visualization/vis_slots.py CONFIG CHECKPOINT IMAGE --out slots.png [--stage 1 --block 0]

The PNG holds three panels side by side: the image, the image overlaid with the slot colours, and the slot colours
alone. Every pixel of the block's feature map gets the colour of its dominant slot (the argmax of its dispatch
weights, a softmax over the 64 slots); the map is enlarged to the image with nearest-neighbour sampling. The paper
reads such maps as evidence that the soft clustering groups pixels by semantics. Any image size is taken as is
(no resizing), so the map has the block's resolution (image / 4, 8 or 16 for stages 0, 1, 2).

CHECKPOINT is one for the config's model (e.g. a converted ImageNet classifier or a trained detector), or a
backbone-only checkpoint (``--backbone-only`` conversions).
"""
import argparse
import colorsys
import os.path as osp
import sys
from typing import Tuple

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import mixformer_mm  # noqa: E402,F401
from mixformer_mm.engine import load_config  # noqa: E402

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def slot_palette(num_slots: int) -> np.ndarray:
    """(S, 3) uint8 BGR colours, hues spread by the golden angle so that neighbouring slot ids differ."""
    colours = []
    for i in range(num_slots):
        hue = (i * 0.618033988749895) % 1.0
        value = 1.0 if i % 2 == 0 else 0.7
        r, g, b = colorsys.hsv_to_rgb(hue, 0.85, value)
        colours.append((round(255 * b), round(255 * g), round(255 * r)))
    return np.array(colours, dtype=np.uint8)


def build_model(config_path: str):
    from mmengine.registry import MODELS, init_default_scope
    cfg = load_config(config_path)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model = MODELS.build(cfg.model).eval()
    if not hasattr(model, 'backbone') or type(model.backbone).__name__ != 'GLNet':
        raise ValueError(f'{config_path}: the model has no GLNet backbone; slots exist only in GLMix blocks')
    preprocessor = cfg.get('data_preprocessor') or cfg.model.get('data_preprocessor') or {}
    mean = preprocessor.get('mean', IMAGENET_MEAN)
    std = preprocessor.get('std', IMAGENET_STD)
    to_rgb = preprocessor.get('to_rgb', preprocessor.get('bgr_to_rgb', True))
    return model, (mean, std, to_rgb)


def load_weights(model, checkpoint_path: str) -> None:
    from mixformer_mm.utils import load_checked_state_dict, unwrap_state_dict
    state = unwrap_state_dict(torch.load(checkpoint_path, map_location='cpu', weights_only=True))
    prefix = 'backbone.' if any(k.startswith('backbone.') for k in state) else None
    load_checked_state_dict(model.backbone, state, source=checkpoint_path, prefix=prefix,
                            allowed_missing=model.backbone.keys_new_by_design)


def glmix_block(backbone, stage: int, block: int):
    from mixformer_mm.models.backbones.glnet import GLMixBlock
    valid = [(i, j) for i, s in enumerate(backbone.stages) for j, b in enumerate(s.blocks) if isinstance(b, GLMixBlock)]
    if (stage, block) not in valid:
        raise ValueError(f'stage {stage} block {block} is not a GLMix block of this GLNet; GLMix blocks are '
                         + ', '.join(f'{i}/{j}' for i, j in valid))
    return backbone.stages[stage].blocks[block]


def to_tensor(image_bgr: np.ndarray, mean, std, to_rgb: bool) -> torch.Tensor:
    image = image_bgr[..., ::-1] if to_rgb else image_bgr
    image = (image.astype(np.float32) - np.array(mean, np.float32)) / np.array(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


@torch.no_grad()
def dominant_slots(backbone, block, inputs: torch.Tensor) -> Tuple[np.ndarray, int]:
    """(h, w) map of each pixel's dominant slot at the block's resolution, and the number of slots."""
    seen = {}
    handles = [
        block.register_forward_pre_hook(lambda m, args: seen.__setitem__('size', args[0].shape[-2:])),
        block.dispatch_probe.register_forward_hook(lambda m, args, out: seen.__setitem__('dispatch', out)),
    ]
    try:
        backbone(inputs)
    finally:
        for handle in handles:
            handle.remove()
    dispatch = seen['dispatch'][0]  # (N, S)
    height, width = seen['size']
    return dispatch.argmax(dim=-1).reshape(height, width).numpy(), dispatch.shape[-1]


def render(image_bgr: np.ndarray, slot_map: np.ndarray, num_slots: int, alpha: float = 0.5) -> np.ndarray:
    import cv2
    height, width = image_bgr.shape[:2]
    colours = slot_palette(num_slots)[cv2.resize(slot_map.astype(np.int32).astype(np.float32), (width, height),
                                                 interpolation=cv2.INTER_NEAREST).astype(np.int64)]
    overlay = (alpha * colours + (1 - alpha) * image_bgr).round().astype(np.uint8)
    return np.concatenate([image_bgr, overlay, colours], axis=1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config of a model with a GLNet backbone')
    parser.add_argument('checkpoint', help='checkpoint of that model, or a backbone-only one')
    parser.add_argument('image', help='image file (any size)')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--stage', type=int, default=1, help='stage of the GLMix block (default 1)')
    parser.add_argument('--block', type=int, default=0, help='block index within the stage (default 0)')
    parser.add_argument('--alpha', type=float, default=0.5, help='opacity of the slot colours in the overlay')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    import mmcv
    args = parse_args(argv)
    if not osp.isfile(args.image):
        sys.exit(f'error: image {args.image} does not exist')
    if not osp.isfile(args.checkpoint):
        sys.exit(f'error: checkpoint {args.checkpoint} does not exist')
    try:
        model, (mean, std, to_rgb) = build_model(args.config)
        load_weights(model, args.checkpoint)
        block = glmix_block(model.backbone, args.stage, args.block)
    except (KeyError, ValueError) as err:
        sys.exit(f'error: {err}')
    image = mmcv.imread(args.image, channel_order='bgr')
    slot_map, num_slots = dominant_slots(model.backbone, block, to_tensor(image, mean, std, to_rgb))
    if not mmcv.imwrite(render(image, slot_map, num_slots, args.alpha), args.out):
        sys.exit(f'error: could not write {args.out}')
    used = len(np.unique(slot_map))
    print(f'{args.out}: stage {args.stage} block {args.block}, {slot_map.shape[0]}x{slot_map.shape[1]} pixels '
          f'dispatched mostly to {used} of {num_slots} slots')
    return 0


if __name__ == '__main__':
    sys.exit(main())
