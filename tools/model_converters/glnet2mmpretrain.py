"""Convert an official GLNet checkpoint (rayleizhu/GLMix) to mixformer_mm's layout.

    python tools/model_converters/glnet2mmpretrain.py glnet_4g.pth glnet-4g_in1k.pth
    python tools/model_converters/glnet2mmpretrain.py glnet_4g.pth glnet-4g_in1k_backbone.pth --backbone-only

The first writes the classifier: configs/glnet/glnet-4g_*_in1k.py loads it with strict=True, the COCO/ADE20K
configs its backbone part (``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``) from
checkpoints/glnet-4g_in1k.pth. The second writes the backbone alone, without the prefix, for
``init_cfg=dict(type='Pretrained', checkpoint=...)``.
Official training checkpoints hold ``model`` and, with EMA, ``model_ema``; by default the official loader's choice
is taken (``model_ema`` for GLNet-16G, ``model`` otherwise), ``--weights`` overrides it. The variant is recognised
from the tensor shapes; keys that do not fit any variant are reported by name.
"""
import argparse
import sys

from _common import check_against_variants, read_checkpoint, save_checkpoint

from mixformer_mm.converters.glnet import convert_glnet, weights_key
from mixformer_mm.models.backbones import GLNet


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official checkpoint, a path or an http(s) URL (a dict with "model" / '
                        '"model_ema", or a bare state_dict)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--backbone-only', action='store_true',
                        help='drop the classifier (norm, head) and the "backbone." prefix')
    parser.add_argument('--weights', choices=('auto', 'model', 'model_ema'), default='auto',
                        help='which weights of a training checkpoint to convert (auto: model_ema for 16G, '
                        'model otherwise, as the official loader)')
    parser.add_argument('--drop-aux-head', action='store_true',
                        help='convert a token-labeling checkpoint to a plain classifier, dropping tklb_aux_head '
                        '(logits then differ from the official ones, which add that head)')
    parser.add_argument('--trust-source', action='store_true',
                        help='allow arbitrary pickled objects (full training checkpoints hold the training '
                        'arguments); only for files you trust')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    checkpoint = read_checkpoint(args.src, args.trust_source)
    try:
        chosen = weights_key(checkpoint, args.weights)
        converted = convert_glnet(checkpoint if chosen is None else checkpoint[chosen],
                                  backbone_only=args.backbone_only, drop_token_label_head=args.drop_aux_head)
    except (KeyError, ValueError, TypeError) as err:
        sys.exit(f'error: {args.src}: {err}')
    backbone_prefix = '' if args.backbone_only else 'backbone.'
    arch = check_against_variants(
        converted, GLNet, backbone_prefix=backbone_prefix,
        build_kwargs=dict(final_norm=not args.backbone_only, extra_norms=False), source=args.src)
    save_checkpoint(converted, args.dst, meta=dict(converted_from=args.src, model='GLNet', arch=arch,
                                                   weights=chosen or 'state_dict', backbone_only=args.backbone_only))
    print(f'GLNet-{arch.upper()}: {len(converted)} keys from {chosen or "the state_dict"} in {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
