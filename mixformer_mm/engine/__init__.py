from .launch import DataNotFoundError, check_data, load_config, setup_distributed

__all__ = ['DataNotFoundError', 'check_data', 'load_config', 'setup_distributed']
