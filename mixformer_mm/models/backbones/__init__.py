from .base_backbone import HierarchicalBackbone
from .dgt import DGT
from .glnet import GLNet
from .groupmixformer import GroupMixFormer

__all__ = ['HierarchicalBackbone', 'GroupMixFormer', 'DGT', 'GLNet']
