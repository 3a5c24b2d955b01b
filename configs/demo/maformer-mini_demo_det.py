# MAFormer Mask R-CNN on the embedded demo data (160x160 images of drawn shapes, 3 classes, COCO format), trained
# from scratch in a few minutes on 2 CPU cores and evaluated with COCO bbox and mask mAP on the val split.
#   python tools/train.py configs/demo/maformer-mini_demo_det.py
# A mini custom arch (see maformer-mini_demo_cls.py) with GLD built for the 160x160 demo images
# (pretrain_img_size=160: 40x40 and 20x20 reference grids), and with a conditional position encoding (cpe=True, a
# residual 3x3 depth-wise conv at the start of every block, off in the paper configs): from scratch on 400 images
# it is what lets this attention model localise within the demo's 250 iterations (configs/maformer/README.md,
# "Demo on the embedded data", has the measurements). The Mask R-CNN, with a narrower FPN and heads than COCO's,
# is ../_base_/models/demo_mask-rcnn.py.
_base_ = [
    '../_base_/models/demo_mask-rcnn.py',
    '../_base_/datasets/demo_coco.py',
    '../_base_/schedules/demo_det_250it.py',
    '../_base_/mixformer_mm.py',
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='MAFormer',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
        pretrain_img_size=160,
        cpe=True,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0),
    neck=dict(in_channels=[32, 64, 128, 256]),
)

# lr 1e-3, the schedule's (and the GroupMixFormer demo's) value: 5e-4, the classification demo's, learns slower here.
optim_wrapper = dict(
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., custom_keys={'pos_embed': dict(decay_mult=0.)}),
)
