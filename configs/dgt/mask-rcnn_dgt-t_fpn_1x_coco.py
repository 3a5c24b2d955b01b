# Mask R-CNN + FPN, 1x (12 epochs), COCO, DGT-T. The recipe is assumed (the family's standard), see README.md.
_base_ = [
    # Swin-T Mask R-CNN 1x: 1333x800 single scale, 8 GPUs x 2 images (batch 16), AdamW lr 1e-4, wd 0.05, steps at
    # 8/11, 1000-iteration linear warm-up. Its Swin backbone is replaced below.
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    '../_base_/models/dgt-t_dense.py',
]

pretrained = None  # the parent's Swin-T weights URL, not used here

model = dict(
    backbone={{_base_.dgt_t}},
    neck=dict(in_channels={{_base_.dgt_t_widths}}))

optim_wrapper = dict(paramwise_cfg={{_base_.norm_without_decay}})  # no weight decay on norms
