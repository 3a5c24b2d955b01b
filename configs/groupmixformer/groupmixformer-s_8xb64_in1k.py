_base_ = '../_base_/groupmixformer_8xb64_in1k.py'

model = dict(backbone=dict(arch='s', drop_path_rate=0.2), head=dict(in_channels=320))
