# Demo classification data: 64x64 drawn shapes, 4 classes, ImageNet-style folders (mixformer_mm.datasets).
# tools/train.py generates data/demo on first use (or run tools/make_demo_data.py).
dataset_type = 'CustomDataset'
data_root = 'data/demo/cls'
classes = ('circle', 'cross', 'square', 'triangle')  # the folder names, sorted (CustomDataset's order)

data_preprocessor = dict(
    num_classes=len(classes),
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,  # images are read as BGR
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix='train', metainfo=dict(classes=classes),
        pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=50,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix='val', metainfo=dict(classes=classes),
        pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
