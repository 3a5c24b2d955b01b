"""Parameters and FLOPs of the model a config builds (classification, detection or segmentation).

    python tools/analysis_tools/get_flops.py configs/groupmixformer/groupmixformer-s_8xb64_in1k.py
    python tools/analysis_tools/get_flops.py CONFIG --shape 800 1280

FLOPs are multiply-adds (one fused multiply-add counts 1), counted by mmengine's FlopAnalyzer (fvcore's rules)
on a traced forward, so matrix products inside attention (matmul/einsum/bmm) are included; so is
``scaled_dot_product_attention`` and any analytic cost a module reports (see ``mixformer_mm.utils.flops``).
Classification models are measured with their head, detectors with all their heads (RPN and RoI heads included)
and segmentors with their decode head but without the auxiliary head (used only in training), as mmpretrain's,
mmdet's and mmseg's own get_flops.py count them. ``--backbone-only`` counts detectors and segmentors up to the neck
instead.
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import mixformer_mm  # noqa: E402,F401
from mixformer_mm.engine import load_config  # noqa: E402


class _Measured(torch.nn.Module):
    """The part of a model that is counted, as a plain tensor -> tensor(s) module."""

    def __init__(self, model, scope, backbone_only=False):
        super().__init__()
        self.model, self.scope, self.backbone_only = model, scope, backbone_only

    def forward(self, inputs):
        if self.scope == 'mmpretrain':
            return self.model(inputs, mode='tensor')
        if self.backbone_only:
            return self.model.extract_feat(inputs)
        # Two-stage detectors turn RPN outputs into proposals, which needs each image's shape.
        return self.model(inputs, self._data_samples(inputs), mode='tensor')

    def _data_samples(self, inputs):
        if self.scope != 'mmdet':
            return None
        from mmdet.structures import DetDataSample
        shape = tuple(inputs.shape[-2:])
        meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape,
                    scale_factor=(1.0, 1.0))
        return [DetDataSample(metainfo=meta) for _ in range(inputs.shape[0])]


def build_model(cfg, backbone_only=False):
    from mmengine.registry import MODELS, init_default_scope
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    model = MODELS.build(cfg.model)
    if not backbone_only and getattr(model, 'with_auxiliary_head', False):
        # mmseg's get_flops leaves out the auxiliary head: it only adds a training loss.
        del model.auxiliary_head
    return _Measured(model, scope, backbone_only).eval()


def count(cfg, shape, backbone_only=False):
    """(params, FLOPs) of what is measured; with backbone_only, params are still those of the whole model built."""
    from mixformer_mm.utils.flops import count_flops, count_params
    measured = build_model(cfg, backbone_only)
    with torch.no_grad():
        return count_params(measured.model), count_flops(measured, (torch.randn(1, 3, *shape), ))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument('--shape', type=int, nargs='+', default=[224], help='input H [W] (default 224)')
    parser.add_argument('--backbone-only', action='store_true',
                        help='detectors and segmentors: count backbone + neck only (default: the whole model)')
    args = parser.parse_args(argv)
    if len(args.shape) > 2 or min(args.shape) <= 0:
        parser.error(f'--shape takes H or H W, positive; got {args.shape}')
    shape = (args.shape[0], args.shape[-1])
    what = 'backbone + neck' if args.backbone_only else 'whole model'
    print('| config | input | params (M) | FLOPs (G, multiply-adds) | counted |\n|---|---|---|---|---|')
    for path in args.configs:
        cfg = load_config(path)
        params, flops = count(cfg, shape, args.backbone_only)
        counted = 'whole model' if cfg.get('default_scope', 'mmpretrain') == 'mmpretrain' else what
        print(f'| {osp.splitext(osp.basename(path))[0]} | {shape[0]}x{shape[1]} | {params / 1e6:.3f} | '
              f'{flops / 1e9:.3f} | {counted} |')


if __name__ == '__main__':
    main()
