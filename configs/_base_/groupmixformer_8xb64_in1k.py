# GroupMixFormer on ImageNet-1K with the official recipe (see configs/groupmixformer/README.md): 8 GPUs x 64 images,
# 224x224, 300 epochs.
# The variant configs in configs/groupmixformer/ set arch, drop_path_rate and the head's in_channels.
_base_ = [
    # ImageClassifier: GAP neck, LinearClsHead with label smoothing 0.1, Mixup 0.8 / CutMix 1.0 (one of the two
    # per batch), truncated-normal Linear init. Its Swin backbone is replaced below.
    'mmpretrain::_base_/models/swin_transformer/tiny_224.py',
    # bicubic RandomResizedCrop 224 + flip, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25 (per-pixel
    # noise); eval: short side 256 (bicubic) + centre crop 224; 64 images per GPU.
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    './schedules/imagenet_bs512_adamw_300e.py',
    'mmpretrain::_base_/default_runtime.py',
    './mixformer_mm.py',
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='GroupMixFormer',
        arch=None,  # set by each variant config
        out_indices=(3, ),
        # the official classifier applies BatchNorm to the last stage before pooling (its `norm4`)
        final_norm=True,
        drop_path_rate=0.,
        # the official training code hard-codes SyncBatchNorm (statistics over all GPUs); the keys equal BN's
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    head=dict(in_channels=None))  # = the last stage's width, set by each variant config
