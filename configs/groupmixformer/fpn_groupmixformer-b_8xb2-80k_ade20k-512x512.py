_base_ = './fpn_groupmixformer-t_8xb2-80k_ade20k-512x512.py'

# the ImageNet classifier converted from the official weights (README.md), in <repo>/checkpoints/:
#   python tools/model_converters/groupmixformer2mmpretrain.py groupmixformer_base.pth \
#       checkpoints/groupmixformer-b_in1k.pth
checkpoint = '{{ fileDirname }}/../../checkpoints/groupmixformer-b_in1k.pth'

# drop path assumed: B's ImageNet value (0.5, official config); no dense-task value is published
model = dict(
    backbone=dict(arch='b', drop_path_rate=0.5, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[200, 240, 320, 480]))
