"""Parameters and FLOPs of the model a config builds (classification, detection or segmentation).

    python tools/analysis_tools/get_flops.py configs/groupmixformer/groupmixformer-s_8xb64_in1k.py
    python tools/analysis_tools/get_flops.py CONFIG --shape 800 1280

FLOPs are multiply-adds (one fused multiply-add counts 1), counted by mmengine's FlopAnalyzer (fvcore's rules)
on a traced forward, so matrix products inside attention (matmul/einsum/bmm) are included; so is
``scaled_dot_product_attention`` and any analytic cost a module reports (see ``mixformer_mm.utils.flops``). Classification models
are measured with their head; detectors and segmentors up to the neck (backbone + neck), as OpenMMLab does.
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

    def __init__(self, model, scope):
        super().__init__()
        self.model, self.scope = model, scope

    def forward(self, inputs):
        if self.scope == 'mmpretrain':
            return self.model(inputs, mode='tensor')
        return self.model.extract_feat(inputs)


def build_model(cfg):
    from mmengine.registry import MODELS, init_default_scope
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    model = MODELS.build(cfg.model)
    return _Measured(model, scope).eval()


def count(cfg, shape):
    from mixformer_mm.utils.flops import count_flops, count_params
    measured = build_model(cfg)
    return count_params(measured.model), count_flops(measured, (torch.randn(1, 3, *shape), ))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument('--shape', type=int, nargs='+', default=[224], help='input H [W] (default 224)')
    args = parser.parse_args(argv)
    shape = (args.shape[0], args.shape[-1])
    print(f'| config | input | params (M) | FLOPs (G, multiply-adds) |\n|---|---|---|---|')
    for path in args.configs:
        params, flops = count(load_config(path), shape)
        print(f'| {osp.splitext(osp.basename(path))[0]} | {shape[0]}x{shape[1]} | {params / 1e6:.3f} | '
              f'{flops / 1e9:.3f} |')


if __name__ == '__main__':
    main()
