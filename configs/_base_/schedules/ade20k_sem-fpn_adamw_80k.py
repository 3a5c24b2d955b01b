# Semantic FPN schedule of the PVT/PoolFormer line (assumed for GroupMixFormer, whose recipe is unpublished):
# 80k iterations, AdamW lr 2e-4 for a total batch of 32 (8 GPUs x 4), wd 1e-4, poly decay (power 0.9) to 0,
# no warm-up, no gradient clipping.
_base_ = 'mmseg::_base_/schedules/schedule_80k.py'

optimizer = dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4)
optim_wrapper = dict(optimizer=optimizer)

param_scheduler = [dict(type='PolyLR', eta_min=0., power=0.9, begin=0, end=80000, by_epoch=False)]
