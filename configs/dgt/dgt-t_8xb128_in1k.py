_base_ = '../_base_/dgt_8xb128_in1k.py'

# drop path: our value for this variant (assumed, configs/dgt/README.md)
model = dict(backbone=dict(arch='t', drop_path_rate=0.2), head=dict(in_channels=512))
