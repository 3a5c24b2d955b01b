# UperNet 160k, ADE20K, GLNet-STL: the 4G recipe with STL's widths (configs/glnet/README.md).
_base_ = './upernet_glnet-4g_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(arch='stl', drop_path_rate=0.3,  # assumed: Swin-T's value in mmseg
                  init_cfg=dict(checkpoint='{{ fileDirname }}/../../checkpoints/glnet-stl_in1k.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
