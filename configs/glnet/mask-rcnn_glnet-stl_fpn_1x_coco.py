# Mask R-CNN + FPN 1x, COCO, GLNet-STL: the 4G recipe with STL's widths (configs/glnet/README.md).
_base_ = './mask-rcnn_glnet-4g_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='stl', drop_path_rate=0.2,  # assumed: Swin-T's value in mmdet
                  init_cfg=dict(checkpoint='{{ fileDirname }}/../../checkpoints/glnet-stl_in1k.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
