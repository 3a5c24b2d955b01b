# GLNet-16G, official recipe with EMA; see configs/glnet/README.md.
_base_ = '../_base_/glnet_16xb128_in1k.py'

model = dict(backbone=dict(arch='16g', drop_path_rate=0.4), head=dict(in_channels=1024))

# The released GLNet-16G weights are the EMA weights (decay 0.9999; mmengine's momentum is 1 - decay).
custom_hooks = [dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')]
