"""Convert an official GroupMixFormer checkpoint to mixformer_mm's layout.

    python tools/model_converters/groupmixformer2mmpretrain.py groupmixformer_small.pth gmf-s_in1k.pth
    python tools/model_converters/groupmixformer2mmpretrain.py groupmixformer_small.pth gmf-s_backbone.pth \
        --backbone-only

The first writes the classifier: configs/groupmixformer/groupmixformer-s_*_in1k.py loads it with strict=True, the
COCO/ADE20K configs its backbone part (``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``)
from checkpoints/groupmixformer-s_in1k.pth. The second writes the backbone alone, without the prefix, for
``init_cfg=dict(type='Pretrained', checkpoint=...)``.
The variant is recognised from the tensor shapes; keys that do not fit any variant are reported by name.
"""
import argparse
import sys

from _common import check_against_variants, load_source, save_checkpoint

from mixformer_mm.converters import convert_groupmixformer
from mixformer_mm.models.backbones import GroupMixFormer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official checkpoint, a path or an http(s) URL (a dict with key "model", or a '
                        'bare state_dict)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--backbone-only', action='store_true',
                        help='drop the classifier (norm4, head) and the "backbone." prefix')
    parser.add_argument('--trust-source', action='store_true',
                        help='allow arbitrary pickled objects (full training checkpoints); only for files you trust')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    state_dict = load_source(args.src, trust=args.trust_source)
    converted = convert_groupmixformer(state_dict, backbone_only=args.backbone_only)
    backbone_prefix = '' if args.backbone_only else 'backbone.'
    arch = check_against_variants(
        converted, GroupMixFormer, backbone_prefix=backbone_prefix,
        build_kwargs=dict(final_norm=not args.backbone_only), source=args.src)
    save_checkpoint(converted, args.dst, meta=dict(converted_from=args.src, model='GroupMixFormer', arch=arch,
                                                   backbone_only=args.backbone_only))
    print(f'GroupMixFormer-{arch.upper()}: {len(state_dict)} official keys -> {len(converted)} keys in {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
