# UperNet, ADE20K, 512x512 crops, 160k iterations, GroupMixFormer-T. No official segmentation recipe exists (the
# paper reports 51.2 mIoU for B without released code); the settings are the Swin-family defaults, see README.md.
_base_ = [
    # Swin-T UperNet: 8 GPUs x 2 images (total 16), AdamW lr 6e-5, wd 0.01, 1500-iteration linear warm-up then
    # poly (power 1.0) to 0; UperHead on all four stages, auxiliary FCN head on stage 2. Its Swin backbone is
    # replaced below.
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    '../_base_/mixformer_mm.py',
]

# ImageNet-1K backbone weights, made from the official checkpoint with
#   python tools/model_converters/groupmixformer2mmpretrain.py groupmixformer_tiny.pth \
#       checkpoints/groupmixformer-t_in1k_backbone.pth --backbone-only
checkpoint = 'checkpoints/groupmixformer-t_in1k_backbone.pth'
checkpoint_file = None  # the parent's Swin-T weights URL, not used here

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
    decode_head=dict(in_channels=[80, 160, 200, 240]),
    auxiliary_head=dict(in_channels=200))

# No weight decay on any normalisation layer. The parent's name-based Swin keys would miss our BatchNorms
# (named `bn`) and its position-table keys match nothing, so they are replaced.
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.))
