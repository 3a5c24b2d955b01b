# MAFormer-L fine-tuned at 384x384 from the 224 model, with CSWin-B's 384 fine-tuning recipe (assumed; official
# CSWin README): 8 GPUs x 32 = 256, lr 5e-6 (no warm-up) cosine to 5e-7 over 20 epochs, then 10 cool-down epochs,
# weight decay 1e-8, drop path 0.7, Mixup 0.1 / CutMix 0.1, EMA 0.9998.
#
# GLD keeps the 224 reference grids (pretrain_img_size=224): at 384 it resamples the 96x96 stage-1 map to 56x56,
# so the 224 checkpoint loads unchanged and the model keeps its 89.7M parameters. Alternative: build with
# `--cfg-options model.backbone.pretrain_img_size=384`; the GLD weights are then converted on loading (GLD is the
# paper's full-resolution token FC at 384, but its FCs grow to 96.3M parameters, e.g. 4608x9216 per stage-1 block).
_base_ = './maformer-l_8xb128_in1k.py'

# the EMA weights of configs/maformer/maformer-l_8xb128_in1k.py (no public MAFormer weights)
load_from = 'checkpoints/maformer-l_in1k.pth'

base_lr = 5e-6
model = dict(
    backbone=dict(drop_path_rate=0.7, pretrain_img_size=224),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.1), dict(type='CutMix', alpha=0.1)]))

bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=384, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10, magnitude_level=9,
         magnitude_std=0.5, hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02, max_area_ratio=1 / 3,
         fill_color=bgr_mean, fill_std=bgr_std),
    dict(type='PackInputs'),
]
# CSWin's 384 models evaluate with crop_pct 1.0: short side 384, centre crop 384
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=384, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=384),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))

optim_wrapper = dict(optimizer=dict(lr=base_lr, weight_decay=1e-8))
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min_ratio=0.1, by_epoch=True, begin=0, end=20, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=1)  # 20 cosine epochs + 10 at the floor
custom_hooks = [dict(type='EMAHook', momentum=1 - 0.9998, priority='ABOVE_NORMAL')]
auto_scale_lr = dict(base_batch_size=256)
