from .groupmixformer import convert_groupmixformer
from .rename import RenameRule, rename_keys

__all__ = ['RenameRule', 'rename_keys', 'convert_groupmixformer']
