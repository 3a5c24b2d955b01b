from .checkpoint import checkpointed
from .layout import map_to_tokens, to_channels_last, tokens_to_map

__all__ = ['checkpointed', 'map_to_tokens', 'to_channels_last', 'tokens_to_map']
