"""Optimizer wrapper for mixed precision on CPU."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from vtseg.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under ``torch.autocast``.

    mmengine's ``AmpOptimWrapper`` is CUDA/NPU/MLU only; ``tools/train.py
    --amp`` uses this wrapper with bfloat16 on CPU instead (bf16 needs no loss
    scaling).

    Args:
        dtype: autocast dtype, ``'bfloat16'`` (default) or ``'float16'``.
        device_type: ``'cpu'`` (default) or ``'cuda'``.
    """

    def __init__(self, *args, dtype: str = 'bfloat16', device_type='cpu',
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.autocast_dtype = getattr(torch, dtype)
        self.device_type = device_type

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(
                device_type=self.device_type, dtype=self.autocast_dtype):
            yield
