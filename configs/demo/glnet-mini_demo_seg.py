# GLNet UperNet on the embedded demo data (128x128 images of drawn shapes; background + 3 shape classes, ADE20K
# layout), trained from scratch in a few minutes on 2 CPU cores and evaluated with mIoU on the val split.
# The backbone is the "mini" custom arch of glnet-mini_demo_cls.py; the decode heads are narrower than the ADE20K
# defaults (64 channels instead of 512) to fit a CPU budget.
#   python tools/train.py configs/demo/glnet-mini_demo_seg.py
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    '../_base_/datasets/demo_ade.py',
    '../_base_/schedules/demo_seg_400it.py',
    '../_base_/mixformer_mm.py',
]

num_classes = 4
# The background covers ~80% of the pixels: weigh it down so that the shapes are learnt within the short schedule.
class_weight = [0.3, 1.0, 1.0, 1.0]
norm_cfg = dict(type='BN', requires_grad=True)
glnet_mini = dict(embed_dims=[32, 64, 128, 128], depths=[1, 1, 3, 1], mlp_ratio=3, downsample='overlap',
                  mixing=['glmix', 'glmix', 'glmix_mhsa', 'mhsa'], cpe=True, ffn_dwconv=True)
model = dict(
    data_preprocessor=dict(size=(128, 128)),  # the demo images are 128x128
    pretrained=None,
    backbone=dict(
        _delete_=True, type='GLNet', arch=glnet_mini, out_indices=(0, 1, 2, 3), extra_norms=True,
        drop_path_rate=0.0, norm_cfg=dict(type='BN')),
    decode_head=dict(
        in_channels=[32, 64, 128, 128], channels=64, num_classes=num_classes, norm_cfg=norm_cfg,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0, class_weight=class_weight)),
    auxiliary_head=dict(
        in_channels=128, channels=32, num_classes=num_classes, norm_cfg=norm_cfg,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4, class_weight=class_weight)),
)
