# The Mask R-CNN of the demo detection configs (configs/demo/*_demo_det.py): mmdet's, for the embedded demo data
# (160x160 images of drawn shapes, 3 classes), with the FPN and heads narrower than the COCO defaults (64/256
# channels instead of 256/1024) to fit a CPU budget. A demo config replaces the backbone (`_delete_=True`) and sets
# the FPN's `in_channels` to its widths.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']

num_classes = 3
fpn_channels = 64
model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    neck=dict(out_channels=fpn_channels, num_outs=5),
    rpn_head=dict(
        in_channels=fpn_channels,
        feat_channels=fpn_channels,
        # objects are 20-70 px: anchors of 16..256 px on strides 4..64
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn_channels),
        bbox_head=dict(in_channels=fpn_channels, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=fpn_channels),
        mask_head=dict(in_channels=fpn_channels, conv_out_channels=fpn_channels, num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(max_per_img=20)),
)
