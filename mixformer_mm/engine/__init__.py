from .launch import DataNotFoundError, check_data, check_model_types, load_config, setup_distributed
from .reliability import (CheckpointError, CheckpointFitHook, CheckpointMismatchError, DatasetSizeHook,
                          NonFiniteLossError, NonFiniteLossHook, RandomStateHook, check_checkpoint_fits)

__all__ = [
    'DataNotFoundError', 'check_data', 'check_model_types', 'load_config', 'setup_distributed', 'CheckpointError',
    'CheckpointFitHook', 'CheckpointMismatchError', 'check_checkpoint_fits', 'DatasetSizeHook', 'NonFiniteLossError',
    'NonFiniteLossHook', 'RandomStateHook'
]
