# MAFormer Mask R-CNN on the embedded demo data (160x160 images of drawn shapes, 3 classes, COCO format), trained
# from scratch in a few minutes on 2 CPU cores and evaluated with COCO bbox and mask mAP on the val split.
#   python tools/train.py configs/demo/maformer-mini_demo_det.py
# A mini custom arch (see maformer-mini_demo_cls.py) with GLD built for the 160x160 demo images
# (pretrain_img_size=160: 40x40 and 20x20 reference grids), and with a conditional position encoding (cpe=True, a
# residual 3x3 depth-wise conv at the start of every block, off in the paper configs): from scratch on 400 images
# it is what lets this attention model localise within the demo's 250 iterations (configs/maformer/README.md,
# "Demo on the embedded data", has the measurements). The FPN and heads are narrower than the COCO defaults
# (64/256 channels instead of 256/1024) to fit a CPU budget.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/demo_coco.py',
    '../_base_/schedules/demo_det_250it.py',
    '../_base_/mixformer_mm.py',
]

num_classes = 3
fpn_channels = 64
model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='MAFormer',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
        pretrain_img_size=160,
        cpe=True,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=fpn_channels, num_outs=5),
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

# lr 1e-3, the schedule's (and the GroupMixFormer demo's) value: 5e-4, the classification demo's, learns slower here.
optim_wrapper = dict(
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., custom_keys={'pos_embed': dict(decay_mult=0.)}),
)
