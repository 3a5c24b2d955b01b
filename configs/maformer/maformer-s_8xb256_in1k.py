# MAFormer-S (ours: the CSWin-T skeleton) on ImageNet-1K with CSWin-T's recipe (assumed): 8 GPUs x 256 = 2048,
# lr 2e-3, weight decay 0.05, drop path 0.2, EMA 0.99984. The paper's S size and recipe are unknown.
_base_ = '../_base_/maformer_in1k.py'

model = dict(backbone=dict(arch='s', drop_path_rate=0.2), head=dict(in_channels=512))
train_dataloader = dict(batch_size=256)
val_dataloader = dict(batch_size=256)
test_dataloader = dict(batch_size=256)
auto_scale_lr = dict(base_batch_size=2048)
