# UperNet, ADE20K, 512x512 crops, 160k iterations, DGT-T. The recipe is assumed (the family's standard), see
# README.md.
_base_ = [
    # Swin-T UperNet: 8 GPUs x 2 images (total 16), AdamW lr 6e-5, wd 0.01, 1500-iteration linear warm-up then
    # poly (power 1.0) to 0; UperHead on all four stages, auxiliary FCN head (loss weight 0.4) on stage 3. Its
    # Swin backbone is replaced below.
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    '../_base_/models/dgt-t_dense.py',
]

checkpoint_file = None  # the parent's Swin-T weights URL, not used here

model = dict(
    backbone={{_base_.dgt_t}},
    decode_head=dict(in_channels={{_base_.dgt_t_widths}}),
    auxiliary_head=dict(in_channels=256))

optim_wrapper = dict(paramwise_cfg={{_base_.norm_without_decay}})  # no weight decay on norms
