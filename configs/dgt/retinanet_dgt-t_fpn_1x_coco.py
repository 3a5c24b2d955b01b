# RetinaNet + FPN, 1x (12 epochs), COCO, DGT-T. The recipe is assumed (the family's standard), see README.md.
_base_ = [
    # RetinaNet R-50 1x: 1333x800 single scale, 8 GPUs x 2 images, steps at 8/11, 500-iteration linear warm-up;
    # FPN on strides 8-32 plus two extra levels (P3-P7). Its ResNet backbone and SGD optimiser are replaced below.
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/models/dgt-t_dense.py',
]

# the FPN takes all three returned stages (start_level=0; the parent's 1 skipped ResNet's C2)
model = dict(
    backbone={{_base_.dgt_t_p3}},
    neck=dict(in_channels={{_base_.dgt_t_p3_widths}}, start_level=0))

# as Mask R-CNN 1x: AdamW lr 1e-4 (batch 16), wd 0.05, no weight decay on normalisation layers
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.))
