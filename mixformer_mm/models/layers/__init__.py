from .checkpoint import checkpointed
from .layout import map_to_tokens, run_blocks_on_tokens, to_channels_last, tokens_to_map

__all__ = ['checkpointed', 'map_to_tokens', 'run_blocks_on_tokens', 'to_channels_last', 'tokens_to_map']
