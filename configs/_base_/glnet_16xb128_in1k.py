# GLNet on ImageNet-1K with the official standard recipe (configs/glnet/README.md): 16 GPUs x 128
# images = 2048, 224x224, 300 epochs. The variant configs in configs/glnet/ set arch, drop_path_rate and the head's
# in_channels. Token-labeling training (the official *_tklb models) is not provided.
_base_ = [
    # ImageClassifier: GAP neck, LinearClsHead with label smoothing 0.1, Mixup 0.8 / CutMix 1.0 (one of the two
    # per batch, i.e. switch probability 0.5), truncated-normal Linear init. Its Swin backbone is replaced below.
    'mmpretrain::_base_/models/swin_transformer/tiny_224.py',
    # bicubic RandomResizedCrop 224 + flip, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25 (per-pixel
    # noise); eval: short side 256 (bicubic) + centre crop 224 (crop_pct 0.875).
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/default_runtime.py',
    './mixformer_mm.py',
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='GLNet',
        arch=None,  # set by each variant config
        out_indices=(3, ),
        final_norm=True,  # the official classifier's BatchNorm before pooling (`norm`)
        extra_norms=False,  # per-output LayerNorms are for dense tasks only
        drop_path_rate=0.,  # set by each variant config
        norm_cfg=dict(type='BN', requires_grad=True)),  # official: nn.BatchNorm2d
    head=dict(in_channels=None))  # = the last stage's width, set by each variant config

# DeiT-style repeated augmentation: 3 repeats of each sample, each epoch cut to the dataset length.
train_dataloader = dict(batch_size=128, sampler=dict(_delete_=True, type='RepeatAugSampler', num_repeats=3,
                                                     shuffle=True))
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

# AdamW lr 2e-3 at batch 2048 (= 2.5e-4 x 2048 / 256), eps 1e-8; weight decay 0.05, none on 1-D parameters
# (norms, biases, LayerScale) but, as in the official trainer, on the 0-dim slot_scale and on init_slots.
# Gradient clipping at a global norm of 5. The official runs use native fp16 AMP: `tools/train.py --amp`.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.),
    clip_grad=dict(max_norm=5.0))

# 5 warm-up epochs rising linearly from (almost) 0 - mmengine's LinearLR cannot start at exactly 0 - then a
# half-cosine to 1e-5 at epoch 300, both updated every iteration.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5, end=300, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# lr above is for this total batch; `tools/train.py --auto-scale-lr` rescales it for other batch sizes.
auto_scale_lr = dict(base_batch_size=2048)
