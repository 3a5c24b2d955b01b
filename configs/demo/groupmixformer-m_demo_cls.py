# GroupMixFormer-M image classification on the embedded demo data (4 classes of drawn shapes, 64x64), trained from
# scratch in a few minutes on 2 CPU cores and evaluated with top-1 accuracy on the held-out val split.
#   python tools/train.py configs/demo/groupmixformer-m_demo_cls.py
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/datasets/demo_cls.py',
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

max_iters = 250
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=25),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=25, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
)
log_processor = dict(by_epoch=False, window_size=20)
randomness = dict(seed=0)
