# An unmodified mmdet config switched to a GroupMixFormer-T backbone: see README.md in this folder.
_base_ = 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py'

# 1. register mixformer_mm's backbones
custom_imports = dict(imports=['mixformer_mm'], allow_failed_imports=False)

model = dict(
    # 2. replace the ResNet-50 (`_delete_` drops its keys: depth, frozen_stages, style, ...)
    backbone=dict(
        _delete_=True,
        type='GroupMixFormer',
        arch='t',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,  # assumed: T's ImageNet value (official config), as configs/groupmixformer/
        norm_cfg=dict(type='SyncBN', requires_grad=True),  # dict(type='BN', requires_grad=True) on one GPU
        # the ImageNet classifier made by tools/model_converters/groupmixformer2mmpretrain.py (README.md); its
        # `backbone.` part, the path resolved from this file's folder
        init_cfg=dict(type='Pretrained', checkpoint='{{ fileDirname }}/../../checkpoints/groupmixformer-t_in1k.pth',
                      prefix='backbone.')),
    # 3. the FPN takes GroupMixFormer-T's stage widths instead of ResNet's [256, 512, 1024, 2048]
    neck=dict(in_channels=[80, 160, 200, 240]))
