from .base_backbone import HierarchicalBackbone
from .groupmixformer import GroupMixFormer

__all__ = ['HierarchicalBackbone', 'GroupMixFormer']
