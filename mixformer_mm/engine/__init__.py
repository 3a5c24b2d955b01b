from .launch import DataNotFoundError, check_data, check_model_types, load_config, setup_distributed
from .reliability import (CheckpointError, CheckpointFitHook, DatasetSizeHook, NonFiniteLossError, NonFiniteLossHook,
                          RandomStateHook)

__all__ = [
    'DataNotFoundError', 'check_data', 'check_model_types', 'load_config', 'setup_distributed', 'CheckpointError',
    'CheckpointFitHook', 'DatasetSizeHook', 'NonFiniteLossError', 'NonFiniteLossHook', 'RandomStateHook'
]
