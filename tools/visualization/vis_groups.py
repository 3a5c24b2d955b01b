"""Show the query groups of DGT's Dynamic Group Attention on an image.

    python tools/visualization/vis_groups.py CONFIG CHECKPOINT IMAGE --out groups.png \
        [--stage 0] [--block 0] [--head 0] [--group G] [--size H W]

Left: the image. Right: each pixel coloured by the group of its token (for the chosen stage, block and head), with
the keys selected by one group (``--group``; default the largest) marked by white-rimmed squares and that group's
own tokens outlined. ``CHECKPOINT`` may be ``none`` to look at an untrained model. The image goes through the
model's data preprocessor (normalisation, padding); ``--size`` resizes it first.
"""
import argparse
import colorsys
import os.path as osp
import sys

import cv2
import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import mixformer_mm  # noqa: E402,F401
from mixformer_mm.engine import load_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="checkpoint file, or 'none' for the untrained model")
    parser.add_argument('image')
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--stage', type=int, default=0)
    parser.add_argument('--block', type=int, default=0)
    parser.add_argument('--head', type=int, default=0)
    parser.add_argument('--group', type=int, default=None, help='group whose selected keys are marked')
    parser.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'), help='resize the image first')
    return parser.parse_args(argv)


def build_model(cfg, checkpoint: str):
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    cfg.model.get('backbone', {}).pop('init_cfg', None)  # weights come from CHECKPOINT
    model = MODELS.build(cfg.model).eval()
    if checkpoint.lower() != 'none':
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model


def find_attention(backbone, stage: int, block: int, head: int = 0):
    from mixformer_mm.models.backbones import DGT
    if not isinstance(backbone, DGT):
        raise TypeError(f'the config\'s backbone is {type(backbone).__name__}, not DGT')
    blocks = {(i, j): attn for i, j, attn in backbone.dg_attentions()}
    if (stage, block) not in blocks:
        raise IndexError(f'no block {block} in stage {stage}; stages have '
                         f'{[len(s.blocks) for s in backbone.stages]} blocks')
    attention = blocks[(stage, block)]
    if not 0 <= head < attention.num_heads:
        raise IndexError(f'--head {head}: this block has {attention.num_heads} heads')
    return attention


def record_grouping(model, attention, image_bgr: np.ndarray):
    """Run the backbone on the preprocessed image and return the chosen attention's grouping and the input size."""
    tensor = torch.from_numpy(np.ascontiguousarray(image_bgr.transpose(2, 0, 1)))
    inputs = model.data_preprocessor(dict(inputs=[tensor], data_samples=None), False)['inputs']
    attention.record_grouping = True
    attention.last_grouping = None
    try:
        with torch.no_grad():
            model.backbone(inputs)
    finally:
        attention.record_grouping = False
    if attention.last_grouping is None:
        height, width = inputs.shape[-2:]
        raise ValueError(f'this block computes global attention at a {height}x{width} input (top-k covers every '
                         'token), so it has no groups; choose an earlier stage or a larger --size')
    return attention.last_grouping, tuple(inputs.shape[-2:])


def palette(num: int) -> np.ndarray:
    """``num`` distinct BGR colours (golden-ratio hues, alternating brightness)."""
    colours = []
    for i in range(num):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95 if i % 2 == 0 else 0.7)
        colours.append((b * 255, g * 255, r * 255))
    return np.array(colours, dtype=np.uint8)


def render(image_bgr: np.ndarray, grouping: dict, input_hw, head: int, group=None):
    """The image and the group map side by side; returns (canvas, marked group)."""
    assignment = grouping['assignment'][0, head].numpy()
    key_index = grouping['key_index'][0, head].numpy()
    rows, cols = grouping['hw']
    num_groups = key_index.shape[0]
    counts = np.bincount(assignment, minlength=num_groups)
    if group is None:
        group = int(counts.argmax())
    if not 0 <= group < num_groups:
        raise IndexError(f'--group {group} is not a group of this head (0..{num_groups - 1})')

    # token grid -> pixels of the (possibly padded) network input, cropped to the image
    height, width = image_bgr.shape[:2]
    in_h, in_w = input_hw
    token_map = assignment.reshape(rows, cols)
    colour_map = palette(num_groups)[token_map]
    colour_map = cv2.resize(colour_map, (in_w, in_h), interpolation=cv2.INTER_NEAREST)[:height, :width]
    overlay = cv2.addWeighted(image_bgr, 0.35, colour_map, 0.65, 0)

    member = cv2.resize((token_map == group).astype(np.uint8), (in_w, in_h),
                        interpolation=cv2.INTER_NEAREST)[:height, :width]
    contours, _ = cv2.findContours(member, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(overlay, contours, -1, (255, 255, 255), 1)
    cell_h, cell_w = in_h / rows, in_w / cols
    half = max(1, int(min(cell_h, cell_w) / 4))
    for key in key_index[group]:
        cy, cx = int((key // cols + 0.5) * cell_h), int((key % cols + 0.5) * cell_w)
        if cy < height and cx < width:
            cv2.rectangle(overlay, (cx - half - 1, cy - half - 1), (cx + half + 1, cy + half + 1), (255, 255, 255), -1)
            cv2.rectangle(overlay, (cx - half, cy - half), (cx + half, cy + half), (0, 0, 0), -1)
    return np.concatenate([image_bgr, overlay], axis=1), group, counts


def main(argv=None):
    args = parse_args(argv)
    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f'cannot read image {args.image}')
    if args.size:
        image = cv2.resize(image, (args.size[1], args.size[0]), interpolation=cv2.INTER_LINEAR)
    model = build_model(load_config(args.config), args.checkpoint)
    attention = find_attention(model.backbone, args.stage, args.block, args.head)
    grouping, input_hw = record_grouping(model, attention, image)
    canvas, group, counts = render(image, grouping, input_hw, args.head, args.group)
    if not cv2.imwrite(args.out, canvas):
        raise OSError(f'cannot write {args.out}')
    rows, cols = grouping['hw']
    print(f'stage {args.stage} block {args.block} head {args.head}: {rows}x{cols} tokens, {len(counts)} groups '
          f'(sizes {counts.min()}-{counts.max()}, {int((counts == 0).sum())} empty); group {group} '
          f'({counts[group]} queries) selects {grouping["key_index"].shape[-1]} keys -> {args.out}')


if __name__ == '__main__':
    main()
