"""Weights-only checkpoint loading that still resumes mmengine training.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses the
Python objects an mmengine Runner pickles into its checkpoints
(``message_hub`` log buffers, numpy arrays and scalars). Rather than falling
back to ``weights_only=False`` (arbitrary code execution from a file), vtseg
allow-lists exactly the globals those checkpoints contain:

* ``mmengine.logging.history_buffer.HistoryBuffer``;
* numpy arrays, dtypes and scalars (``numpy.ndarray``, ``numpy.dtype`` and the
  concrete dtype classes, ``numpy._core.multiarray._reconstruct`` /
  ``scalar``);
* ``builtins.getattr``, but **only** as ``getattr(HistoryBuffer, name)`` for a
  registered statistics method (``min``, ``max``, ``mean``, ``current``, ...):
  that is how a HistoryBuffer pickles its ``_statistics_methods``. The name
  ``builtins.getattr`` is mapped to :func:`history_buffer_getattr`, which
  refuses every other call, so a checkpoint cannot reach arbitrary attributes.

Any other global is refused by torch's weights-only unpickler; we re-raise it
as :class:`UnsafeCheckpointError` naming the file and the global.
"""
import os.path as osp
from contextlib import contextmanager

import numpy as np
import torch


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint pickles an object outside vtseg's allow-list."""


def history_buffer_getattr(obj, name):
    """Restricted ``getattr`` for unpickling: HistoryBuffer statistics only."""
    # on use: vtseg.compat loads before any mmengine / mmcv module
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and isinstance(name, str) and (
            name in HistoryBuffer._statistics_methods
            or name in ('min', 'max', 'mean', 'current')):
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f'refusing getattr({obj!r}, {name!r}) while unpickling a checkpoint: '
        'vtseg only allows HistoryBuffer statistics methods')


def _numpy_globals():
    mods = []
    core = getattr(np, '_core', None) or np.core
    multiarray = core.multiarray
    mods += [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype]
    # numpy 2 may pickle dtypes by their concrete class.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in dir(dtypes):
            cls = getattr(dtypes, name)
            if isinstance(cls, type) and name.endswith('DType'):
                mods.append(cls)
    # Names under both numpy 1 (numpy.core) and numpy 2 (numpy._core).
    extra = []
    for modname in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        extra.append((multiarray._reconstruct, f'{modname}._reconstruct'))
        extra.append((multiarray.scalar, f'{modname}.scalar'))
    return mods + extra


def allowed_globals():
    """The allow-list passed to ``torch.serialization.safe_globals``."""
    # on use: vtseg.compat loads before any mmengine / mmcv module
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer, (history_buffer_getattr, 'builtins.getattr')
            ] + _numpy_globals()


@contextmanager
def safe_globals():
    """Context in which ``torch.load(weights_only=True)`` accepts mmengine
    checkpoints."""
    with torch.serialization.safe_globals(allowed_globals()):
        yield


def safe_torch_load(filename, map_location=None):
    """``torch.load`` with ``weights_only=True`` and vtseg's allow-list.

    Args:
        filename: path (or file-like object) of the checkpoint.
        map_location: as for :func:`torch.load`.

    Raises:
        FileNotFoundError: the path does not exist.
        UnsafeCheckpointError: the file pickles a global outside the
            allow-list (message names the file and the global).
        RuntimeError: the file is not a readable checkpoint.
    """
    if isinstance(filename, str):
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f'checkpoint not found: {filename}')
    try:
        with safe_globals():
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(f'{filename}: {e}') from None
    except Exception as e:  # torch raises UnpicklingError / RuntimeError
        msg = str(e)
        if 'Unsupported global' in msg or 'weights_only' in msg.lower() \
                or 'Weights only load failed' in msg:
            first = msg.strip().splitlines()
            detail = next((ln for ln in first if 'GLOBAL' in ln
                           or 'Unsupported' in ln), first[0] if first else '')
            raise UnsafeCheckpointError(
                f'refusing to load checkpoint {filename}: it pickles objects '
                f'outside vtseg\'s weights-only allow-list ({detail.strip()}). '
                'vtseg never unpickles arbitrary objects; re-save the '
                'checkpoint as a plain state dict (tensors, numbers, strings).'
            ) from None
        raise RuntimeError(
            f'cannot read checkpoint {filename}: {type(e).__name__}: {e}'
        ) from e


def install():
    """Route mmengine's local-file checkpoint loading through
    :func:`safe_torch_load` (used by ``load_checkpoint``, ``--resume``,
    ``load_from``)."""
    # on use: vtseg.compat loads before any mmengine / mmcv module
    from mmengine.runner.checkpoint import CheckpointLoader

    @CheckpointLoader.register_scheme(prefixes='', force=True)
    def load_from_local(filename, map_location):
        return safe_torch_load(filename, map_location)

    return load_from_local
