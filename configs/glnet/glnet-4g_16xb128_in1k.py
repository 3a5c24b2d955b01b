# GLNet-4G, official recipe; see configs/glnet/README.md.
_base_ = '../_base_/glnet_16xb128_in1k.py'

model = dict(backbone=dict(arch='4g', drop_path_rate=0.15), head=dict(in_channels=512))
