_base_ = './mask-rcnn_maformer-s_fpn_ms-crop-3x_coco.py'

# trained with configs/maformer/maformer-l_8xb128_in1k.py (no public MAFormer weights)
checkpoint = 'checkpoints/maformer-l_in1k.pth'

# drop path assumed (spec section 4: 0.2-0.3); gradient checkpointing for L (spec section 4)
model = dict(
    backbone=dict(arch='l', drop_path_rate=0.3, with_cp=True, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[96, 192, 384, 768]))
