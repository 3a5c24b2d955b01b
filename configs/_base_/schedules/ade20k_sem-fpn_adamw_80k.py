# Semantic FPN schedule of the PVT/PoolFormer line (assumed for GroupMixFormer, DGT and MAFormer, whose recipes are
# unpublished): 80k iterations at a total batch of 16 (8 GPUs x 2, configs/_base_/datasets/ade20k_sem-fpn.py), AdamW
# lr 1e-4, wd 1e-4, poly decay (power 0.9) to 0, no warm-up, no gradient clipping. This is PVT's setting, and the
# same number of images and lr per image as PoolFormer's 40k iterations x 32 at lr 2e-4.
_base_ = 'mmseg::_base_/schedules/schedule_80k.py'

optimizer = dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4)
optim_wrapper = dict(optimizer=optimizer)

param_scheduler = [dict(type='PolyLR', eta_min=0., power=0.9, begin=0, end=80000, by_epoch=False)]
