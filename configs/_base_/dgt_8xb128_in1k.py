# DGT on ImageNet-1K, 224x224, 8 GPUs x 128 images (total 1024), 300 epochs. No DGT recipe could be read (the
# paper's text beyond its introduction was unavailable): every setting below is ASSUMED, the standard recipe of
# this model family (Swin/CSWin/Pale), as configs/dgt/README.md says.
# The variant configs in configs/dgt/ set arch, drop_path_rate and the head's in_channels.
_base_ = [
    # ImageClassifier: GAP neck, LinearClsHead with label smoothing 0.1, Mixup 0.8 / CutMix 1.0 (one of the two
    # per batch), truncated-normal Linear init. Its Swin backbone is replaced below.
    'mmpretrain::_base_/models/swin_transformer/tiny_224.py',
    # bicubic RandomResizedCrop 224 + flip, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25; eval: short
    # side 256 (bicubic) + centre crop 224 (crop ratio 0.875)
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    # AdamW lr 1e-3 for a total batch of 1024 (= 1e-3 x batch / 1024), betas (0.9, 0.999), wd 0.05
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
    './mixformer_mm.py',
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='DGT',
        arch=None,  # set by each variant config
        out_indices=(3, ),  # the last stage, through its LayerNorm (norm3), feeds the pooling and the head
        drop_path_rate=None,  # set by each variant config
        norm_cfg=dict(type='SyncBN', requires_grad=True)),  # the stem's BatchNorm; keys equal BN's
    head=dict(in_channels=None))  # = 8 C, set by each variant config

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

optim_wrapper = dict(
    # no weight decay on norms, biases (the CPE bias included) or any other 1-D parameter; the parent's Swin
    # position-table keys match nothing here, so they are dropped
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.),
    clip_grad=dict(max_norm=5.0))

# 20 warm-up epochs from 1e-6 (lr x 1e-3), then cosine to 1e-5, both updated every iteration
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20, end=300, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)

# lr above is for this total batch; `tools/train.py --auto-scale-lr` rescales it for other batch sizes
auto_scale_lr = dict(base_batch_size=1024)
