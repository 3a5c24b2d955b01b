"""Where mixformer_mm's models are registered.

OpenMMLab codebases each own a child of mmengine's root ``MODELS`` registry (scopes ``mmpretrain``, ``mmdet``,
``mmseg``). A name registered in the root is found from every child, so registering our backbones there lets
``type='GroupMixFormer'`` build under any default scope without importing the other codebases. Our own child
registry (scope ``mixformer_mm``) makes the explicit form ``type='mixformer_mm.GroupMixFormer'`` work too.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mixformer_mm', locations=['mixformer_mm.models'])


def register_model(cls):
    """Class decorator: register ``cls`` under its class name in the root registry and in ours."""
    MODELS.register_module(module=cls)
    MMENGINE_MODELS.register_module(module=cls)
    return cls
