# Mask R-CNN + FPN, 1x (12 epochs), COCO, GLNet-4G. GLNet has no released detection code or recipe; this is the
# recipe of its sibling BiFormer (same author, same macro layout as 4G), see configs/glnet/README.md.
_base_ = [
    # Swin-T Mask R-CNN 1x: 1333x800 single scale, 8 GPUs x 2 images, AdamW lr 1e-4, wd 0.05, steps at 8/11,
    # 1000-iteration linear warm-up. Its Swin backbone is replaced below.
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    '../_base_/models/glnet-4g_dense.py',
]

pretrained = None  # the parent's Swin-T weights URL, not used here

model = dict(
    backbone={{_base_.glnet_4g_det}},
    neck=dict(in_channels={{_base_.glnet_4g_widths}}))

# no weight decay on norm parameters; BiFormer trained with fp16 AMP (`tools/train.py --amp`)
optim_wrapper = dict(paramwise_cfg={{_base_.norm_without_decay}})
