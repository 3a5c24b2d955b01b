# RetinaNet + FPN 1x, COCO, GLNet-16G: the 4G recipe with this variant's widths (configs/glnet/README.md).
_base_ = './retinanet_glnet-4g_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='16g', drop_path_rate=0.4,  # assumed: this variant's ImageNet value (official README)
                  init_cfg=dict(checkpoint='{{ fileDirname }}/../../checkpoints/glnet-16g_in1k.pth')),
    neck=dict(in_channels=[256, 512, 1024]))
