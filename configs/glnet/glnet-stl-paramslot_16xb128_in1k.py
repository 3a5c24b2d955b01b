# GLNet-STL paramslot (learned slot initialisation), official recipe; see configs/glnet/README.md.
_base_ = '../_base_/glnet_16xb128_in1k.py'

model = dict(backbone=dict(arch='stl_paramslot', drop_path_rate=0.1), head=dict(in_channels=768))
