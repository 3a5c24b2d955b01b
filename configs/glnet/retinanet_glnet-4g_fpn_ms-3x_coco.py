# RetinaNet + FPN, 3x (36 epochs) with multi-scale training, COCO, GLNet-4G. The paper reports this schedule but
# no recipe is published (BiFormer has no 3x): this is the 1x recipe with mmdet's own RetinaNet multi-scale 3x
# pipeline and steps (mmdet::retinanet/retinanet_r50-caffe_fpn_ms-3x_coco.py), assumed; see configs/glnet/README.md.
# mmdet has no RetinaNet with Swin's crop pipeline, which the Mask R-CNN 3x configs use; without a crop, mmdet
# names it ms-3x.
_base_ = './retinanet_glnet-4g_fpn_1x_coco.py'

# the short side one of 640, 672, ..., 800 (long side <= 1333) per image, then a horizontal flip
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomChoiceResize', scales=[(1333, s) for s in range(640, 801, 32)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# 1x's 500-iteration warm-up, then steps at 28/34 of 36 epochs, as mmdet's RetinaNet ms-3x
max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[28, 34], gamma=0.1),
]
