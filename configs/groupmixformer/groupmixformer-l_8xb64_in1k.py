# L: the official config file is marked "need to adjust" and gives 71.8M params / 38.2 GFLOPs instead of the
# published 70.3M / 36.1G; no official L weights were released (see README).
_base_ = '../_base_/groupmixformer_8xb64_in1k.py'

model = dict(backbone=dict(arch='l', drop_path_rate=0.1), head=dict(in_channels=480))
