"""Share of a model's forward time spent in its token stages."""
import statistics
import time
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from .benchmark import forward_fn, sync

__all__ = ['stage_time_fraction']


def _timed(fn: Callable, device: torch.device, spent: List[float],
           on_result: Optional[Callable] = None) -> Callable:
    """``fn`` with its wall time (device-synchronised) appended to
    ``spent``; ``on_result(out)`` sees each result (outside the timing)."""

    def timed(*args, **kwargs):
        sync(device)
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        sync(device)
        spent.append(time.perf_counter() - t0)
        if on_result is not None:
            on_result(out)
        return out

    return timed


def stage_time_fraction(model: nn.Module, inputs: Tensor,
                        stage_types: Sequence[type],
                        repeats: int = 10) -> dict:
    """Share of a model's forward time spent in token stages of the given
    types (their ``forward`` and ``restore`` calls, and the products of a
    reconstruction deferred to the decode head), measured with
    ``perf_counter`` around each call over ``repeats`` forwards.

    Only instances are patched (their ``forward`` / ``restore``, and the
    ``restore_tokens`` of a :class:`~vtseg.models.utils.ClusteredFeatureMap`
    that a timed ``restore`` returns), never a class, and everything is
    undone on return.

    Args:
        model: a segmentor (run in ``mode='tensor'``) or a module taking
            one tensor.
        inputs: (B, 3, H, W) preprocessed images.
        stage_types: token stage classes to time.
        repeats: timed forwards (after one untimed).

    Returns:
        ``dict(total_ms, stages_ms, fraction)`` (medians per forward).
    """
    device = inputs.device
    spent: List[float] = []

    def time_deferred(out):
        # a reconstruction deferred to the decode head (restore='head')
        # returns a ClusteredFeatureMap (alone or in a tuple) whose
        # restore_tokens the head calls: time that instance's method
        for obj in out if isinstance(out, (tuple, list)) else (out, ):
            meth = getattr(obj, 'restore_tokens', None)
            if callable(meth) and 'restore_tokens' not in vars(obj):
                obj.restore_tokens = _timed(meth, device, spent)

    patched = []
    for mod in model.modules():
        if not isinstance(mod, tuple(stage_types)):
            continue
        for meth in ('forward', 'restore'):
            if not hasattr(mod, meth):
                continue
            timed = _timed(getattr(mod, meth), device, spent,
                           time_deferred if meth == 'restore' else None)
            # an instance __dict__ entry shadows the class method; it is
            # deleted again below
            object.__setattr__(mod, meth, timed)
            patched.append((mod, meth))
    fn = forward_fn(model)
    totals, stage_totals = [], []
    try:
        with torch.no_grad():
            fn(inputs)
            for _ in range(repeats):
                spent.clear()
                sync(device)
                t0 = time.perf_counter()
                fn(inputs)
                sync(device)
                totals.append(time.perf_counter() - t0)
                stage_totals.append(sum(spent))
    finally:
        for mod, meth in patched:
            del mod.__dict__[meth]
    total = statistics.median(totals)
    stages = statistics.median(stage_totals)
    return dict(total_ms=total * 1e3, stages_ms=stages * 1e3,
                fraction=stages / total)
