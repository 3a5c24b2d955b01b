# DeiT/Swin-style ImageNet-1K optimisation recipe at a total batch of 512 (e.g. 8 GPUs x 64):
# AdamW lr 5e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0.05 with none on norms, biases and any other 1-D
# parameter; gradient clipping at a global norm of 5; 300 epochs; 20 warm-up epochs rising linearly from
# lr x 1e-3 (5e-7); then cosine, updated every iteration, down to lr x 1e-2 (5e-6).
# lr, warm-up start and floor all scale linearly with the total batch (as in the official GroupMixFormer code)
# when training with `--auto-scale-lr`; the cosine floor is a ratio so that it scales too.
_base_ = 'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py'

optim_wrapper = dict(
    optimizer=dict(lr=5e-4),
    # No decay for 1-D parameters (norm weights/biases, all biases); the parent's Swin position-table keys
    # (absolute_pos_embed, relative_position_bias_table) match nothing here, so they are dropped.
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.),
    clip_grad=dict(max_norm=5.0))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=True, begin=20, end=300,
         convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)

# lr above is for this total batch; `tools/train.py --auto-scale-lr` rescales it for other batch sizes.
auto_scale_lr = dict(base_batch_size=512)
