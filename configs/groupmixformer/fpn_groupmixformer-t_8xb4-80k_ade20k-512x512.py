# Semantic FPN, ADE20K, 512x512 crops, 80k iterations, 8 GPUs x 4 images (total 32), GroupMixFormer-T. No official
# segmentation recipe exists; the settings are the PVT/PoolFormer-family defaults (assumed), see README.md.
_base_ = [
    # FPN (256 channels, 4 levels) + FPNHead (128 channels); its ResNet backbone is replaced below
    'mmseg::_base_/models/fpn_r50.py',
    # random resize (2048, 512) x 0.5-2.0, 512x512 crop, flip, photometric distortion; 4 images per GPU
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    # AdamW lr 2e-4, wd 1e-4, poly (power 0.9), 80k iterations
    '../_base_/schedules/ade20k_sem-fpn_adamw_80k.py',
    '../_base_/mixformer_mm.py',
]

# ImageNet-1K backbone weights, made from the official checkpoint with
#   python tools/model_converters/groupmixformer2mmpretrain.py groupmixformer_tiny.pth \
#       checkpoints/groupmixformer-t_in1k_backbone.pth --backbone-only
checkpoint = 'checkpoints/groupmixformer-t_in1k_backbone.pth'

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,  # the parent's ResNet weights; ours come from the backbone's init_cfg
    backbone=dict(
        _delete_=True,
        type='GroupMixFormer',
        arch='t',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,  # assumed: the ImageNet value (the dense-task value is not published)
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,  # assumed
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[80, 160, 200, 240]),
    decode_head=dict(num_classes=150))
