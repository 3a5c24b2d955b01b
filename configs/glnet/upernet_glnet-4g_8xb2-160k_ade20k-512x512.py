# UperNet, ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images, GLNet-4G, with the recipe of its sibling
# BiFormer (configs/glnet/README.md).
_base_ = [
    # Swin-T UperNet: 8 GPUs x 2 images (total 16), AdamW lr 6e-5, wd 0.01, 1500-iteration linear warm-up from
    # 1e-6 x lr, then poly (power 1.0) to 0; UperHead on all four stages, auxiliary FCN head on stage 2.
    # Its Swin backbone is replaced below.
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    '../_base_/models/glnet-4g_dense.py',
]

checkpoint_file = None  # the parent's Swin-T weights URL, not used here

model = dict(
    backbone={{_base_.glnet_4g_upernet}},
    decode_head=dict(in_channels={{_base_.glnet_4g_widths}}),
    auxiliary_head=dict(in_channels=256))

# no weight decay on norm parameters (replaces the parent's Swin-specific keys)
optim_wrapper = dict(paramwise_cfg={{_base_.norm_without_decay}})
