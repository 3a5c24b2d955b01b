# ADE20K as the PVT/PoolFormer Semantic FPN line runs it, on top of mmseg's ADE20K settings (random resize
# (2048, 512) x 0.5-2.0, 512x512 crop, flip, photometric distortion):
# - 2 images per GPU: 8 GPUs x 2 = 16, PVT's batch (PVT: 80k x 16; PoolFormer: 40k x 32, the same 1.28M images);
# - at test time the (2048, 512) resize is followed by ResizeToMultiple(size_divisor=32), as in PoolFormer's
#   config (mmseg configs/poolformer), so that every FPN level has exactly half the size of the one above.
_base_ = 'mmseg::_base_/datasets/ade20k.py'

train_dataloader = dict(batch_size=2)

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=32),
    # annotations are loaded after the resizes: the metric compares with the label map at its original size
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
