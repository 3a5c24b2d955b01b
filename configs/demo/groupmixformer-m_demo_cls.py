# GroupMixFormer-M image classification on the embedded demo data (4 classes of drawn shapes, 64x64), trained from
# scratch in a few minutes on 2 CPU cores and evaluated with top-1 accuracy on the held-out val split.
#   python tools/train.py configs/demo/groupmixformer-m_demo_cls.py
_base_ = [
    '../_base_/datasets/demo_cls.py',
    '../_base_/schedules/demo_cls_250it.py',
    '../_base_/mixformer_mm.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='GroupMixFormer', arch='m', out_indices=(3, ), final_norm=True, drop_path_rate=0.0,
        norm_cfg=dict(type='BN')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=4,
        in_channels=160,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
)
