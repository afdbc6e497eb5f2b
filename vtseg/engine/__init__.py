from .feature_cache_hook import FrozenBackboneCacheHook
from .optim_wrapper import AutocastOptimWrapper

__all__ = ['AutocastOptimWrapper', 'FrozenBackboneCacheHook']
