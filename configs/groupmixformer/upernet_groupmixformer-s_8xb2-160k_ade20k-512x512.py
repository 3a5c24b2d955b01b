_base_ = './upernet_groupmixformer-t_8xb2-160k_ade20k-512x512.py'

# the ImageNet classifier converted from the official weights (README.md), in <repo>/checkpoints/:
#   python tools/model_converters/groupmixformer2mmpretrain.py groupmixformer_small.pth \
#       checkpoints/groupmixformer-s_in1k.pth
checkpoint = '{{ fileDirname }}/../../checkpoints/groupmixformer-s_in1k.pth'

# drop path assumed: S's ImageNet value (0.2, official config); no dense-task value is published
model = dict(
    backbone=dict(arch='s', drop_path_rate=0.2, init_cfg=dict(checkpoint=checkpoint)),
    decode_head=dict(in_channels=[80, 160, 320, 320]),
    auxiliary_head=dict(in_channels=320))
