# MAFormer on ImageNet-1K, 224x224. The paper's recipe is not retrievable; everything here is ASSUMED from the CSWin
# lineage (official microsoft/CSWin-Transformer main.py and train.sh), see
# configs/maformer/README.md. MAFormer-S/B/L take the settings of CSWin-T/S/B.
# The variant configs in configs/maformer/ set arch, drop path, batch, lr, weight decay, EMA and head width.
_base_ = [
    # ImageClassifier: GAP neck, LinearClsHead with label smoothing 0.1, Mixup 0.8 / CutMix 1.0 (one of the two per
    # batch), truncated-normal Linear init. Its Swin backbone is replaced below.
    'mmpretrain::_base_/models/swin_transformer/tiny_224.py',
    # bicubic RandomResizedCrop 224 + flip, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    # AdamW, no decay on 1-D parameters, per-iteration warm-up + cosine (values replaced below)
    './schedules/imagenet_bs512_adamw_300e.py',
    'mmpretrain::_base_/default_runtime.py',
    './mixformer_mm.py',
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='MAFormer',
        arch=None,  # set by each variant config
        out_indices=(3, ),  # its LayerNorm is the classifier's final norm (CSWin: norm -> mean -> head)
        drop_path_rate=0.),
    head=dict(in_channels=None))  # 8C, set by each variant config

# Evaluation with CSWin's crop_pct 0.9: short side int(224 / 0.9) = 248 (bicubic), centre crop 224.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=248, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# CSWin (timm) schedule: 20 warm-up epochs from 1e-6, cosine to 1e-5 at epoch 300, then 10 cool-down epochs at
# 1e-5; no gradient clipping. The peak lr is set per variant; the start/floor ratios below assume lr 2e-3 and are
# reset by the variant configs whose lr differs.
base_lr = 2e-3
optim_wrapper = dict(
    optimizer=dict(lr=base_lr, weight_decay=0.05),
    # no decay on norms, biases and other 1-D parameters (timm), nor on GLD position embeddings (a learned position
    # table, as ViT's; configs/maformer/README.md)
    paramwise_cfg=dict(custom_keys={'pos_embed': dict(decay_mult=0.)}),
    clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / base_lr, by_epoch=True, begin=0, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-5 / base_lr, by_epoch=True, begin=20, end=300,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=310, val_interval=1)  # cosine ends at 300; lr stays at its floor after

# Model EMA, evaluated and saved in place of the raw weights (CSWin --model-ema); decay 0.99984 for T/S-sized models.
custom_hooks = [dict(type='EMAHook', momentum=1 - 0.99984, priority='ABOVE_NORMAL')]
