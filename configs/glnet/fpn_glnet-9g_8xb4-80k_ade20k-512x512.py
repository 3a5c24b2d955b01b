# Semantic FPN 80k, ADE20K, GLNet-9G: the 4G recipe with this variant's widths (configs/glnet/README.md).
_base_ = './fpn_glnet-4g_8xb4-80k_ade20k-512x512.py'

model = dict(
    backbone=dict(arch='9g', drop_path_rate=0.3,  # assumed: this variant's ImageNet value (official README)
                  init_cfg=dict(checkpoint='{{ fileDirname }}/../../checkpoints/glnet-9g_in1k.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
