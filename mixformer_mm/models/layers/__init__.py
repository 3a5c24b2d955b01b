from .checkpoint import checkpointed

__all__ = ['checkpointed']
