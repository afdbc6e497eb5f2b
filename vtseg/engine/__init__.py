from .optim_wrapper import AutocastOptimWrapper

__all__ = ['AutocastOptimWrapper']
