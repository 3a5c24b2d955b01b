from .atomic import atomic_path
from .checkpoint import compare_state_dicts, describe_mismatch, load_checked_state_dict, unwrap_state_dict

__all__ = ['atomic_path', 'compare_state_dicts', 'describe_mismatch', 'load_checked_state_dict', 'unwrap_state_dict']
