# RetinaNet + FPN, 1x (12 epochs), COCO, GLNet-4G, with the recipe of its sibling BiFormer (configs/glnet/README.md).
_base_ = [
    # RetinaNet R-50 1x: 1333x800 single scale, 8 GPUs x 2 images, steps at 8/11, 500-iteration linear warm-up;
    # FPN P3-P7 with the two extra levels convolved from the last backbone output ('on_input').
    # Its ResNet backbone and SGD optimiser are replaced below.
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/models/glnet-4g_dense.py',
]

# Mask R-CNN's detection backbone (drop path 0.2 assumed for RetinaNet: BiFormer's RetinaNet value is not in its
# configs) on stages 1-3; the FPN takes all three (start_level=0)
model = dict(
    backbone={{_base_.glnet_4g_det_p3}},
    neck=dict(in_channels={{_base_.glnet_4g_p3_widths}}, start_level=0))

# AdamW lr 1e-4, wd 1e-4 (decay on all parameters); BiFormer trained with fp16 AMP (`tools/train.py --amp`)
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4))
