from .inputs import ChannelMismatchError, InputCheckHook, NonFiniteInputError, NumClassesMismatchError
from .launch import (DataNotFoundError, EmptyImageListError, check_data, check_model_types, load_config,
                     setup_distributed)
from .preemption import PREEMPTED_MARKER, REQUEUE_EXIT_CODE, PreemptionHook
from .reliability import (CheckpointError, CheckpointFitHook, CheckpointMismatchError, CheckpointWriteError,
                          DatasetSizeHook, NonFiniteLossError, NonFiniteLossHook, RandomStateHook,
                          check_checkpoint_fits)
from .safe_checkpoint import SafeCheckpointHook
from .world_size import WorldSizeHook

__all__ = [
    'DataNotFoundError', 'check_data', 'check_model_types', 'load_config', 'setup_distributed', 'CheckpointError',
    'CheckpointFitHook', 'CheckpointMismatchError', 'check_checkpoint_fits', 'DatasetSizeHook', 'NonFiniteLossError',
    'NonFiniteLossHook', 'RandomStateHook', 'CheckpointWriteError', 'PreemptionHook', 'PREEMPTED_MARKER',
    'REQUEUE_EXIT_CODE', 'SafeCheckpointHook', 'WorldSizeHook', 'ChannelMismatchError', 'InputCheckHook',
    'NonFiniteInputError', 'NumClassesMismatchError', 'EmptyImageListError'
]
