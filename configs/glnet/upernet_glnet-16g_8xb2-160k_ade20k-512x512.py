# UperNet 160k, ADE20K, GLNet-16G: the 4G recipe with this variant's widths (configs/glnet/README.md).
_base_ = './upernet_glnet-4g_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(arch='16g', drop_path_rate=0.4,  # assumed: this variant's ImageNet value (official README)
                  init_cfg=dict(checkpoint='{{ fileDirname }}/../../checkpoints/glnet-16g_in1k.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
