"""Datasets shipped with mixformer_mm: the generated demo data (drawn shapes, nothing to download)."""
from .demo_data import (CLS_CLASSES, DEFAULT_ROOT, DEMO_DATA_VERSION, DET_CLASSES, SEG_CLASSES, ensure_demo_data,
                        generate_demo_data)

__all__ = ['ensure_demo_data', 'generate_demo_data', 'CLS_CLASSES', 'DET_CLASSES', 'SEG_CLASSES',
           'DEMO_DATA_VERSION', 'DEFAULT_ROOT']
