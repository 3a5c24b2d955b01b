# GroupMixFormer-M Mask R-CNN on the embedded demo data (160x160 images of drawn shapes, 3 classes, COCO format),
# trained from scratch in a few minutes on 2 CPU cores and evaluated with COCO bbox and mask mAP on the val split.
# The Mask R-CNN, with a narrower FPN and heads than COCO's, is ../_base_/models/demo_mask-rcnn.py.
#   python tools/train.py configs/demo/groupmixformer-m_demo_det.py
_base_ = [
    '../_base_/models/demo_mask-rcnn.py',
    '../_base_/datasets/demo_coco.py',
    '../_base_/schedules/demo_det_250it.py',
    '../_base_/mixformer_mm.py',
]

model = dict(
    backbone=dict(
        _delete_=True, type='GroupMixFormer', arch='m', out_indices=(0, 1, 2, 3), drop_path_rate=0.0,
        norm_cfg=dict(type='BN')),
    neck=dict(in_channels=[40, 80, 160, 160]),
)
