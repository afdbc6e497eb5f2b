from .feature_cache_hook import FrozenBackboneCacheHook
from .optim_wrapper import AutocastOptimWrapper
from .optimizers import ViTLayerDecayOptimizerConstructor, vit_layer_id

__all__ = [
    'AutocastOptimWrapper', 'FrozenBackboneCacheHook',
    'ViTLayerDecayOptimizerConstructor', 'vit_layer_id'
]
