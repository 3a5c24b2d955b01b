# RetinaNet + FPN 3x multi-scale, COCO, GLNet-9G: the 4G recipe with this variant's widths (configs/glnet/README.md).
_base_ = './retinanet_glnet-4g_fpn_ms-3x_coco.py'

model = dict(
    backbone=dict(arch='9g', drop_path_rate=0.3,  # assumed: this variant's ImageNet value (official README)
                  init_cfg=dict(checkpoint='{{ fileDirname }}/../../checkpoints/glnet-9g_in1k.pth')),
    neck=dict(in_channels=[192, 384, 768]))
