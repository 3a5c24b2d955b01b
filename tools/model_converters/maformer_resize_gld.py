"""Convert a MAFormer checkpoint's GLD weights to another pretraining resolution.

    python tools/model_converters/maformer_resize_gld.py maformer-l_in1k.pth maformer-l_in1k-384.pth \
        --src-size 224 --dst-size 384

MAFormer's GLD token-FC is built for the token grid of ``pretrain_img_size`` (configs/maformer/README.md). A model
built with another ``pretrain_img_size`` needs the GLD weights on its grid: this resizes every ``token_fc`` (both
axes, bilinear, the input axis rescaled so that each global token keeps averaging the same image area) and the
GLD position embeddings; everything else is copied unchanged. Loading through ``init_cfg=dict(type='Pretrained')``
or ``load_state_dict`` does the same conversion on the fly for square sizes; use this tool for non-square ones or
to keep a converted file.
"""
import argparse
import sys

from _common import load_source, save_checkpoint

from mixformer_mm.models.backbones.maformer import resize_gld_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='MAFormer checkpoint, a path or an http(s) URL (mmengine {"state_dict": ...} or a '
                        'bare state_dict)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--src-size', type=int, nargs='+', required=True,
                        help='pretrain_img_size the checkpoint was built with: S or H W')
    parser.add_argument('--dst-size', type=int, nargs='+', required=True, help='target pretrain_img_size: S or H W')
    parser.add_argument('--gld-ratio', type=float, default=0.5, help="the model's gld_cfg ratio (default 0.5)")
    parser.add_argument('--stem', choices=('cswin', 'conv'), default='cswin',
                        help="stem of the model (default 'cswin'); it fixes the token grids of a size")
    parser.add_argument('--trust-source', action='store_true',
                        help='allow arbitrary pickled objects (full training checkpoints); only for files you trust')
    return parser.parse_args(argv)


def _size(values):
    if len(values) not in (1, 2):
        sys.exit(f'error: a size is S or H W, got {values}')
    return (values[0], values[-1])


def main(argv=None) -> int:
    args = parse_args(argv)
    state_dict = dict(load_source(args.src, trust=args.trust_source))
    try:
        converted = resize_gld_checkpoint(state_dict, _size(args.src_size), _size(args.dst_size), args.gld_ratio,
                                          stem=args.stem)
    except ValueError as err:
        sys.exit(f'error: {err}')
    if not converted:
        sys.exit(f'error: {args.src} holds no GLD weight that differs from a {_size(args.dst_size)} model '
                 '(not a MAFormer checkpoint, or already at that size)')
    save_checkpoint(state_dict, args.dst, meta=dict(converted_from=args.src, model='MAFormer',
                                                    pretrain_img_size=list(_size(args.dst_size))))
    print(f'MAFormer: resized {len(converted)} GLD tensors from {_size(args.src_size)} to {_size(args.dst_size)} '
          f'in {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
