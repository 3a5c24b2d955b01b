# Mask R-CNN + FPN, 3x (36 epochs) with multi-scale training, COCO, GLNet-4G. The paper reports this schedule but
# no recipe is published: this is mmdet's standard Swin 3x multi-scale recipe (assumed), see configs/glnet/README.md.
_base_ = [
    # Swin-T Mask R-CNN 3x: short side 480-800 (long side <= 1333), or with probability 0.5 a 400-600 resize,
    # a 384-600 random crop and then the 480-800 resize; 8 GPUs x 2 images; AdamW lr 1e-4, wd 0.05; steps at
    # 27/33; 1000-iteration linear warm-up. Its Swin backbone is replaced below.
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py',
    '../_base_/models/glnet-4g_dense.py',
]

pretrained = None  # the parent's Swin-T weights URL, not used here

# the 1x backbone; its drop path is assumed for 3x too (no 3x value is published)
model = dict(
    backbone={{_base_.glnet_4g_det}},
    neck=dict(in_channels={{_base_.glnet_4g_widths}}))

optim_wrapper = dict(paramwise_cfg={{_base_.norm_without_decay}})  # no weight decay on norms
