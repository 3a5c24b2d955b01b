# Mask R-CNN + FPN, 1x (12 epochs), COCO, MAFormer-S. The paper reports COCO gains over CSWin without a recipe we
# could read; the settings are the Swin/CSWin-family defaults (assumed), see README.md.
_base_ = [
    # Swin-T Mask R-CNN 1x: 1333x800 single scale, 8 GPUs x 2 images, AdamW lr 1e-4, wd 0.05, steps at 8/11,
    # 1000-iteration linear warm-up. Its Swin backbone is replaced below.
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    '../_base_/models/maformer-s_dense.py',
]

pretrained = None  # the parent's Swin-T weights URL, not used here

model = dict(
    backbone={{_base_.maformer_s}},
    neck=dict(in_channels={{_base_.maformer_s_widths}}))

optim_wrapper = dict(paramwise_cfg={{_base_.maformer_no_decay}})
