# MAFormer-L (ours: the CSWin-B skeleton) on ImageNet-1K with CSWin-B's recipe (assumed): 8 GPUs x 128 = 1024,
# lr 1e-3, weight decay 0.1, drop path 0.5, EMA 0.99992. The paper reports 85.9% top-1 for MAFormer-L (resolution,
# size and recipe unknown); this config has not reproduced it.
_base_ = '../_base_/maformer_in1k.py'

base_lr = 1e-3
model = dict(backbone=dict(arch='l', drop_path_rate=0.5), head=dict(in_channels=768))
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = dict(batch_size=128)
optim_wrapper = dict(optimizer=dict(lr=base_lr, weight_decay=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / base_lr, by_epoch=True, begin=0, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-5 / base_lr, by_epoch=True, begin=20, end=300,
         convert_to_iter_based=True),
]
custom_hooks = [dict(type='EMAHook', momentum=1 - 0.99992, priority='ABOVE_NORMAL')]
auto_scale_lr = dict(base_batch_size=1024)
