# Mask R-CNN + FPN, 3x (36 epochs) with multi-scale training, COCO, GLNet-4G. The paper reports this schedule but
# no recipe is published: this is mmdet's standard Swin 3x multi-scale recipe (assumed), see configs/glmix/README.md.
_base_ = [
    # Swin-T Mask R-CNN 3x: short side 480-800 (long side <= 1333), or with probability 0.5 a 400-600 resize,
    # a 384-600 random crop and then the 480-800 resize; 8 GPUs x 2 images; AdamW lr 1e-4, wd 0.05; steps at
    # 27/33; 1000-iteration linear warm-up. Its Swin backbone is replaced below.
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py',
    '../_base_/mixformer_mm.py',
]

pretrained = None  # the parent's Swin-T weights URL, not used here

model = dict(
    backbone=dict(
        _delete_=True,
        type='GLNet',
        arch='4g',
        out_indices=(0, 1, 2, 3),
        extra_norms=True,
        drop_path_rate=0.2,  # assumed: as 1x
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/glnet-4g_in1k_backbone.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))

optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.))  # no weight decay on norms
