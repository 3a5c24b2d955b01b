_base_ = './upernet_dgt-t_8xb2-160k_ade20k-512x512.py'

# the ImageNet-1K classifier trained with configs/dgt/dgt-b_8xb128_in1k.py
checkpoint = '{{ fileDirname }}/../../checkpoints/dgt-b_in1k.pth'

# drop path assumed (DGT publishes no dense recipe): one step below B's ImageNet 0.5 (configs/dgt/dgt-b_8xb128_in1k.py)
model = dict(
    backbone=dict(arch='b', drop_path_rate=0.4, init_cfg=dict(checkpoint=checkpoint)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
