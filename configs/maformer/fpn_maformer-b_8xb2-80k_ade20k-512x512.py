_base_ = './fpn_maformer-s_8xb2-80k_ade20k-512x512.py'

# trained with configs/maformer/maformer-b_8xb256_in1k.py (no public MAFormer weights)
checkpoint = '{{ fileDirname }}/../../checkpoints/maformer-b_in1k.pth'

# drop path assumed (MAFormer publishes no dense recipe): 0.3, the top of the range of Swin's dense
# configs (0.2 in mmdet, 0.3 in mmseg), for a model larger than S
model = dict(
    backbone=dict(arch='b', drop_path_rate=0.3, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[64, 128, 256, 512]))
