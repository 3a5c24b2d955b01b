# MAFormer image classification on the embedded demo data (4 classes of drawn shapes, 64x64), trained from scratch
# in a few minutes on 2 CPU cores and evaluated with top-1 accuracy on the held-out val split.
#   python tools/train.py configs/demo/maformer-mini_demo_cls.py
# MAFormer-S (28M parameters, 21 blocks in stage 3) takes ~3 s per batch of 32 here, so the demo uses a mini
# custom arch with the same structure: MAF blocks in stages 1-2 (local windows + GLD + fusion), global blocks in
# stages 3-4. GLD is built for the 64x64 demo images (pretrain_img_size=64: 16x16 and 8x8 reference grids), so it
# is exactly the paper's token FC here.
_base_ = [
    '../_base_/datasets/demo_cls.py',
    '../_base_/schedules/demo_cls_400it.py',
    '../_base_/mixformer_mm.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='MAFormer',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
        pretrain_img_size=64,
        out_indices=(3, ),
        drop_path_rate=0.0),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=4,
        in_channels=256,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
)

# lr 5e-4: with 1e-3 (the GroupMixFormer demos' value) this model stayed near chance (34% top-1 after 250 iterations)
optim_wrapper = dict(
    optimizer=dict(lr=5e-4),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., custom_keys={'pos_embed': dict(decay_mult=0.)}),
)
