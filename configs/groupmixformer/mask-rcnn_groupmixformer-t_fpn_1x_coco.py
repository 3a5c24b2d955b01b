# Mask R-CNN + FPN, 1x (12 epochs), COCO, GroupMixFormer-T. No official detection recipe or result exists; the
# settings are the Swin/PVT-family defaults (marked "assumed"), see README.md.
_base_ = [
    # Swin-T Mask R-CNN 1x: 1333x800 single scale, 8 GPUs x 2 images, AdamW lr 1e-4, wd 0.05, steps at 8/11,
    # 1000-iteration linear warm-up. Its Swin backbone is replaced below.
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    '../_base_/mixformer_mm.py',
]

# ImageNet-1K backbone weights, made from the official checkpoint with
#   python tools/model_converters/groupmixformer2mmpretrain.py groupmixformer_tiny.pth \
#       checkpoints/groupmixformer-t_in1k_backbone.pth --backbone-only
checkpoint = 'checkpoints/groupmixformer-t_in1k_backbone.pth'
pretrained = None  # the parent's Swin-T weights URL, not used here

model = dict(
    backbone=dict(
        _delete_=True,
        type='GroupMixFormer',
        arch='t',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,  # assumed: the ImageNet value (the dense-task value is not published)
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,  # assumed
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[80, 160, 200, 240]))

# No weight decay on any normalisation layer. The parent's name-based Swin keys would miss our BatchNorms
# (named `bn`) and its position-table keys match nothing, so they are replaced. Biases keep the decay (assumed).
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.))
