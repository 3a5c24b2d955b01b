_base_ = './retinanet_dgt-t_fpn_1x_coco.py'

# the ImageNet-1K classifier trained with configs/dgt/dgt-b_8xb128_in1k.py
checkpoint = '{{ fileDirname }}/../../checkpoints/dgt-b_in1k.pth'

# drop path assumed (DGT publishes no dense recipe): one step below B's ImageNet 0.5 (configs/dgt/dgt-b_8xb128_in1k.py)
model = dict(
    backbone=dict(arch='b', drop_path_rate=0.4, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[256, 512, 1024]))  # stages 1-3
