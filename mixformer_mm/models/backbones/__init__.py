from .base_backbone import HierarchicalBackbone
from .dgt import DGT
from .glnet import GLNet
from .groupmixformer import GroupMixFormer
from .maformer import MAFormer

__all__ = ['HierarchicalBackbone', 'GroupMixFormer', 'DGT', 'GLNet', 'MAFormer']
