from .base_backbone import HierarchicalBackbone
from .glnet import GLNet
from .groupmixformer import GroupMixFormer

__all__ = ['HierarchicalBackbone', 'GroupMixFormer', 'GLNet']
