# MAFormer-B (ours: the CSWin-S skeleton) on ImageNet-1K with CSWin-S's recipe (assumed): 8 GPUs x 256 = 2048,
# lr 2e-3, weight decay 0.05, drop path 0.4, EMA 0.99984. The paper's B size and recipe are unknown.
_base_ = '../_base_/maformer_in1k.py'

model = dict(backbone=dict(arch='b', drop_path_rate=0.4), head=dict(in_channels=512))
train_dataloader = dict(batch_size=256)
val_dataloader = dict(batch_size=256)
test_dataloader = dict(batch_size=256)
auto_scale_lr = dict(base_batch_size=2048)
