# Semantic FPN, ADE20K, 512x512 crops, 80k iterations, 8 GPUs x 2 images (total 16), DGT-T. The settings are the
# PVT/PoolFormer-family defaults (ASSUMED; DGT's standard protocol names only UperNet), see README.md.
_base_ = [
    # FPN (256 channels, 4 levels) + FPNHead (128 channels); its ResNet backbone is replaced below
    'mmseg::_base_/models/fpn_r50.py',
    # mmseg's ADE20K (random resize (2048, 512) x 0.5-2.0, 512x512 crop, flip, photometric distortion) with
    # 2 images per GPU and test images resized to multiples of 32, as PVT/PoolFormer
    '../_base_/datasets/ade20k_sem-fpn.py',
    'mmseg::_base_/default_runtime.py',
    # AdamW lr 1e-4, wd 1e-4, poly (power 0.9), 80k iterations: PVT's schedule
    '../_base_/schedules/ade20k_sem-fpn_adamw_80k.py',
    '../_base_/models/dgt-t_dense.py',
]

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,  # the parent's ResNet weights; ours come from the backbone's init_cfg
    backbone={{_base_.dgt_t}},
    neck=dict(in_channels={{_base_.dgt_t_widths}}),
    decode_head=dict(num_classes=150))
