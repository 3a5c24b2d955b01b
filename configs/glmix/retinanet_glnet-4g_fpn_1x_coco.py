# RetinaNet + FPN, 1x (12 epochs), COCO, GLNet-4G, with the recipe of its sibling BiFormer (configs/glmix/README.md).
_base_ = [
    # RetinaNet R-50 1x: 1333x800 single scale, 8 GPUs x 2 images, steps at 8/11, 500-iteration linear warm-up;
    # FPN P3-P7 with the two extra levels convolved from the last backbone output ('on_input').
    # Its ResNet backbone and SGD optimiser are replaced below.
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/mixformer_mm.py',
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='GLNet',
        arch='4g',
        # the FPN starts at stride 8: stage 0 is not returned (BiFormer passes it and FPN's start_level=1 skips
        # it; the same FPN, without an extra norm that would never receive a gradient)
        out_indices=(1, 2, 3),
        extra_norms=True,
        drop_path_rate=0.2,  # assumed: as Mask R-CNN
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/glnet-4g_in1k_backbone.pth')),
    neck=dict(in_channels=[128, 256, 512], start_level=0))

# AdamW lr 1e-4, wd 1e-4 (decay on all parameters); BiFormer trained with fp16 AMP (`tools/train.py --amp`)
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4))
