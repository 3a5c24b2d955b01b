# An unmodified mmseg config switched to a GroupMixFormer-T backbone: see README.md in this folder.
_base_ = 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py'

# 1. register mixformer_mm's backbones
custom_imports = dict(imports=['mixformer_mm'], allow_failed_imports=False)

model = dict(
    # 2. the parent loads ImageNet ResNet weights through the model-level `pretrained`; ours come with the backbone
    pretrained=None,
    # 3. replace the ResNetV1c (`_delete_` drops its keys: depth, dilations, contract_dilation, ...)
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
    # 4. the heads take GroupMixFormer-T's stage widths instead of ResNet's
    decode_head=dict(in_channels=[80, 160, 200, 240]),  # all four stages
    auxiliary_head=dict(in_channels=200))  # stage 2 (in_index=2)
