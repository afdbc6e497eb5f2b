from .checkpoint_hook import AtomicCheckpointHook
from .class_count_check_hook import ClassCountCheckHook
from .feature_cache_hook import FrozenBackboneCacheHook
from .optim_wrapper import AutocastOptimWrapper
from .optimizers import ViTLayerDecayOptimizerConstructor, vit_layer_id
from .strict_load_hook import StrictLoadHook

__all__ = [
    'AtomicCheckpointHook', 'AutocastOptimWrapper',
    'ClassCountCheckHook', 'FrozenBackboneCacheHook',
    'StrictLoadHook', 'ViTLayerDecayOptimizerConstructor', 'vit_layer_id'
]
