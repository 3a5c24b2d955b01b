# Semantic FPN, ADE20K, 512x512 crops, 80k iterations, 8 GPUs x 4 images, GLNet-4G, with the recipe of its sibling
# BiFormer (configs/glnet/README.md).
_base_ = [
    # FPN (256 channels, 4 levels) + FPNHead (128 channels); its ResNet backbone is replaced below
    'mmseg::_base_/models/fpn_r50.py',
    # random resize (2048, 512) x 0.5-2.0, 512x512 crop, flip, photometric distortion; 4 images per GPU
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    # 80k iterations, validation and checkpoints every 8k
    'mmseg::_base_/schedules/schedule_80k.py',
    '../_base_/models/glnet-4g_dense.py',
]

crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,  # the parent's ResNet weights; ours come from the backbone's init_cfg
    backbone={{_base_.glnet_4g_sfpn}},
    neck=dict(in_channels={{_base_.glnet_4g_widths}}),
    decode_head=dict(num_classes=150))

# AdamW lr 2e-4, wd 1e-4 (decay on all parameters); 1000 warm-up iterations from 0.1 x lr, then cosine to
# lr x 1e-8 at 80k
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-8, by_epoch=False, begin=1000, end=80000),
]
