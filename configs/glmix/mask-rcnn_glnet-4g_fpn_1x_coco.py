# Mask R-CNN + FPN, 1x (12 epochs), COCO, GLNet-4G. GLNet has no released detection code or recipe; this is the
# recipe of its sibling BiFormer (same author, same macro layout as 4G), see configs/glmix/README.md.
_base_ = [
    # Swin-T Mask R-CNN 1x: 1333x800 single scale, 8 GPUs x 2 images, AdamW lr 1e-4, wd 0.05, steps at 8/11,
    # 1000-iteration linear warm-up. Its Swin backbone is replaced below.
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    '../_base_/mixformer_mm.py',
]

pretrained = None  # the parent's Swin-T weights URL, not used here

model = dict(
    backbone=dict(
        _delete_=True,
        type='GLNet',
        arch='4g',
        out_indices=(0, 1, 2, 3),
        extra_norms=True,  # one new LayerNorm per output (spec section 7.4)
        drop_path_rate=0.2,  # BiFormer-S's detection value
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,  # frozen BN statistics in the downsampling layers (BN weights still train)
        # made with: python tools/model_converters/glnet2mmpretrain.py glnet_4g.pth \
        #     checkpoints/glnet-4g_in1k_backbone.pth --backbone-only
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/glnet-4g_in1k_backbone.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))

# no weight decay on norm parameters (replaces the parent's Swin-specific keys); BiFormer trained with fp16 AMP
# (`tools/train.py --amp`)
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.))
