_base_ = '../_base_/groupmixformer_8xb64_in1k.py'

model = dict(backbone=dict(arch='t', drop_path_rate=0.1), head=dict(in_channels=240))
