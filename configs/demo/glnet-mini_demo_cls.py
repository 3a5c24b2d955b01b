# GLNet image classification on the embedded demo data (4 classes of drawn shapes, 64x64), trained from scratch in
# a few minutes on 2 CPU cores and evaluated with top-1 accuracy on the held-out val split.
#   python tools/train.py configs/demo/glnet-mini_demo_cls.py
# "mini" is a custom arch with the layout of GLNet-4G (overlapped stem, GLMix stages 0-1, hybrid GLMix/attention
# stage 2, attention stage 3, CPE and FFN depthwise conv) at a CPU-friendly size (GLNet-STL costs ~3x GroupMixFormer-M
# per image). At 64x64 input stage 2 is 4x4, fewer pixels than the 8x8 slot grid: the pooled slot initialisation
# repeats pixels there (configs/glnet/README.md).
_base_ = [
    '../_base_/datasets/demo_cls.py',
    '../_base_/schedules/demo_cls_400it.py',
    '../_base_/mixformer_mm.py',
]

glnet_mini = dict(embed_dims=[32, 64, 128, 128], depths=[1, 1, 3, 1], mlp_ratio=3, downsample='overlap',
                  mixing=['glmix', 'glmix', 'glmix_mhsa', 'mhsa'], cpe=True, ffn_dwconv=True)
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='GLNet', arch=glnet_mini, out_indices=(3, ), final_norm=True, extra_norms=False, drop_path_rate=0.0,
        norm_cfg=dict(type='BN')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=4,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
)
