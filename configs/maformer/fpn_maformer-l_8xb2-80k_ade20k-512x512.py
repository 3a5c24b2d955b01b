_base_ = './fpn_maformer-s_8xb2-80k_ade20k-512x512.py'

# trained with configs/maformer/maformer-l_8xb128_in1k.py (no public MAFormer weights)
checkpoint = '{{ fileDirname }}/../../checkpoints/maformer-l_in1k.pth'

# drop path assumed (MAFormer publishes no dense recipe): 0.3, the top of the range of Swin's dense
# configs (0.2 in mmdet, 0.3 in mmseg), as B; gradient checkpointing to fit L's activations (README.md)
model = dict(
    backbone=dict(arch='l', drop_path_rate=0.3, with_cp=True, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[96, 192, 384, 768]))
