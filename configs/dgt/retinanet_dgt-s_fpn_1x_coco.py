_base_ = './retinanet_dgt-t_fpn_1x_coco.py'

# the ImageNet-1K classifier trained with configs/dgt/dgt-s_8xb128_in1k.py
checkpoint = '{{ fileDirname }}/../../checkpoints/dgt-s_in1k.pth'

# drop path assumed (DGT publishes no dense recipe): S's ImageNet value (configs/dgt/dgt-s_8xb128_in1k.py)
model = dict(
    backbone=dict(arch='s', drop_path_rate=0.3, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[192, 384, 768]))  # stages 1-3
