# RetinaNet + FPN, 1x (12 epochs), COCO, GroupMixFormer-T. No official detection recipe or result exists; the
# settings are the Swin/PVT-family defaults (marked "assumed"), see README.md.
_base_ = [
    # RetinaNet R-50 1x: 1333x800 single scale, 8 GPUs x 2 images, steps at 8/11, 500-iteration linear warm-up;
    # FPN on strides 8-32 plus two extra levels (P3-P7). Its ResNet backbone and SGD optimiser are replaced below.
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/mixformer_mm.py',
]

# ImageNet-1K backbone weights, made from the official checkpoint with
#   python tools/model_converters/groupmixformer2mmpretrain.py groupmixformer_tiny.pth \
#       checkpoints/groupmixformer-t_in1k_backbone.pth --backbone-only
checkpoint = 'checkpoints/groupmixformer-t_in1k_backbone.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='GroupMixFormer',
        arch='t',
        out_indices=(0, 1, 2, 3),  # the FPN (start_level=1) uses stages 1-3
        drop_path_rate=0.1,  # assumed: the ImageNet value (the dense-task value is not published)
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,  # assumed
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[80, 160, 200, 240]))

# assumed: as Mask R-CNN 1x, AdamW lr 1e-4 (batch 16), wd 0.05, no weight decay on normalisation layers
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.))
