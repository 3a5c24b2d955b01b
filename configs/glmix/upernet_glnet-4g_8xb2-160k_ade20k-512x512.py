# UperNet, ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images, GLNet-4G, with the recipe of its sibling
# BiFormer (configs/glmix/README.md).
_base_ = [
    # Swin-T UperNet: 8 GPUs x 2 images (total 16), AdamW lr 6e-5, wd 0.01, 1500-iteration linear warm-up from
    # 1e-6 x lr, then poly (power 1.0) to 0; UperHead on all four stages, auxiliary FCN head on stage 2.
    # Its Swin backbone is replaced below.
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    '../_base_/mixformer_mm.py',
]

checkpoint_file = None  # the parent's Swin-T weights URL, not used here

model = dict(
    backbone=dict(
        _delete_=True,
        type='GLNet',
        arch='4g',
        out_indices=(0, 1, 2, 3),
        extra_norms=True,
        drop_path_rate=0.3,  # BiFormer-S's value
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/glnet-4g_in1k_backbone.pth')),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))

# no weight decay on norm parameters (replaces the parent's Swin-specific keys)
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.))
