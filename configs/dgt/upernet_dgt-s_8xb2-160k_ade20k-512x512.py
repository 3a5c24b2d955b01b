_base_ = './upernet_dgt-t_8xb2-160k_ade20k-512x512.py'

# the ImageNet-1K classifier trained with configs/dgt/dgt-s_8xb128_in1k.py
checkpoint = '{{ fileDirname }}/../../checkpoints/dgt-s_in1k.pth'

# drop path assumed (DGT publishes no dense recipe): S's ImageNet value (configs/dgt/dgt-s_8xb128_in1k.py)
model = dict(
    backbone=dict(arch='s', drop_path_rate=0.3, init_cfg=dict(checkpoint=checkpoint)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
