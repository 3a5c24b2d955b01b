# Demo classification schedule: 250 iterations of AdamW from scratch on the embedded data (2 CPU cores, minutes),
# on top of mmpretrain's default runtime.
_base_ = ['mmpretrain::_base_/default_runtime.py']

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
