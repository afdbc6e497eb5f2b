"""Compatibility layer applied on ``import vtseg``.

* :mod:`.mmcv_ops`: makes ``mmcv.ops`` importable on mmcv-lite, with
  pure-PyTorch ``nms``/``batched_nms``/``roi_align``/``bbox_overlaps``/
  ``sigmoid_focal_loss`` and a clear error for any other compiled op. Nothing
  is patched when full mmcv is installed.
* :mod:`.checkpoint`: weights-only checkpoint loading with an allow-list that
  covers what mmengine Runner checkpoints pickle (so ``--resume`` works on
  torch >= 2.6) and refuses anything else.
* :mod:`.dist`: distributed initialisation without CUDA (gloo on CPU).

See docs/compat.md.
"""
from . import checkpoint, dist, mmcv_ops
from .checkpoint import (UnsafeCheckpointError, safe_globals, safe_torch_load)
from .mmcv_ops import (MissingCompiledOpError, has_compiled_mmcv_ops)

_APPLIED = False


def apply() -> None:
    """Apply both patches once (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    mmcv_ops.install()
    checkpoint.install()
    dist.install()
    _APPLIED = True


__all__ = [
    'apply', 'safe_torch_load', 'safe_globals', 'UnsafeCheckpointError',
    'MissingCompiledOpError', 'has_compiled_mmcv_ops'
]
