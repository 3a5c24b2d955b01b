# DGT image classification on the embedded demo data (4 classes of drawn shapes, 64x64), trained from scratch on
# 2 CPU cores and evaluated with top-1 accuracy on the held-out val split.
#   python tools/train.py configs/demo/dgt-mini_demo_cls.py
# The backbone is DGT-T's design at demo size: half the widths, 5 blocks instead of 22, and groups and top-k scaled
# to the 64x64 images (16x16, 8x8, 4x4 and 2x2 tokens). Stages 1 and 2 run Dynamic Group Attention with 16 queries
# per group on average (16 groups of 32 keys; 4 groups of 16 keys); stages 3 and 4 run global attention.
# DGT-T itself (arch='t') does not learn within this short schedule: its loss stays at chance for 250 iterations.
_base_ = [
    '../_base_/datasets/demo_cls.py',
    '../_base_/schedules/demo_cls_250it.py',
    '../_base_/mixformer_mm.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='DGT',
        arch=dict(embed_dims=[32, 64, 128, 256], depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8], groups=[16, 4, 1, 1],
                  topk=[32, 16, None, None]),
        out_indices=(3, ),
        drop_path_rate=0.0,
        norm_cfg=dict(type='BN')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=4,
        in_channels=256,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
)

optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.))
