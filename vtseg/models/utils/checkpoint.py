"""Strict loading of checkpoints into vtseg modules.

One rule for every entry point (``tools/train.py`` / ``tools/test.py`` through
:class:`vtseg.engine.StrictLoadHook`, :func:`vtseg.apis.init_model`, the
demos, ``init_cfg=dict(type='Pretrained')`` of vtseg's ViT): a checkpoint must
fit the model exactly. Missing, unexpected and mis-shaped keys are an error
that names them (docs/reliability.md#checkpoint-loading). Two explicit
exceptions:

* a model may declare ``ignored_checkpoint_prefixes`` (e.g. TokenCut, which
  has no decode head, ignores ``decode_head.*`` of a full segmentor
  checkpoint); such keys are dropped with a log line that names them;
* partial loading (``partial=True``, ``--partial-load`` on the command
  lines) loads the tensors whose names and shapes fit, logs every missing,
  unexpected and mis-shaped key as a warning, and still refuses a checkpoint
  of which no tensor fits.
"""
import logging
from collections import OrderedDict
from typing import Dict, List, Mapping, NamedTuple, Sequence, Tuple

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    'CheckpointMismatchError', 'CheckpointFit', 'extract_state_dict',
    'fit_state_dict', 'check_state_dict', 'load_pretrained_strict',
    'format_keys'
]

#: keys listed by name in an error message before "(and N more)"
_MAX_LISTED = 10


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the model (missing / unexpected / shape)."""


class CheckpointFit(NamedTuple):
    """How a checkpoint's state dict fits a module (:func:`fit_state_dict`).

    Attributes:
        loadable: the tensors to load (names and shapes match the module).
        missing: module keys the checkpoint lacks.
        unexpected: checkpoint keys the module lacks (not ignored).
        mismatched: ``(key, checkpoint shape, module shape)`` triples.
        ignored: checkpoint keys dropped under an ignored prefix.
    """
    loadable: 'OrderedDict[str, torch.Tensor]'
    missing: List[str]
    unexpected: List[str]
    mismatched: List[Tuple[str, tuple, tuple]]
    ignored: List[str]


def extract_state_dict(checkpoint, source: str = '') -> 'OrderedDict':
    """The tensor dict of a loaded checkpoint (``state_dict`` / ``model`` /
    the object itself), as an OrderedDict."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(
            f'{source}: expected a dict of tensors, got {type(checkpoint)}')
    for key in ('state_dict', 'model', 'module'):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            checkpoint = checkpoint[key]
            break
    return OrderedDict(checkpoint)


def format_keys(keys: Sequence[str], limit: int = _MAX_LISTED) -> str:
    """``'a.x, a.y, b.z (and 7 more; a.* 8, b.* 2)'``: the first ``limit``
    names, then the count per top-level module when there are more."""
    keys = list(keys)
    shown = ', '.join(keys[:limit])
    if len(keys) <= limit:
        return shown
    groups: Dict[str, int] = OrderedDict()
    for k in keys:
        head = k.split('.', 1)[0]
        groups[head] = groups.get(head, 0) + 1
    per = ', '.join(f'{h}.* {n}' for h, n in groups.items())
    return f'{shown} (and {len(keys) - limit} more; {per})'


def _shape(v):
    return tuple(v.shape) if hasattr(v, 'shape') else None


def fit_state_dict(module: torch.nn.Module,
                   state_dict: Mapping,
                   source: str = '',
                   partial: bool = False,
                   ignore_prefixes: Sequence[str] = (),
                   hint: str = '') -> CheckpointFit:
    """Compare a checkpoint's state dict with ``module.state_dict()``.

    Checkpoint keys that the module lacks and that start with one of
    ``ignore_prefixes`` or of the module's own ``ignored_checkpoint_prefixes``
    attribute are dropped and logged. Everything else must fit: strict
    (``partial=False``) raises on any missing, unexpected or mis-shaped key;
    partial logs them as a warning and raises only when no tensor fits.

    Args:
        module: the target module.
        state_dict: checkpoint tensors, keys as in ``module.state_dict()``.
        source: checkpoint name for messages (file path).
        partial: allow a partial fit (see above).
        ignore_prefixes: extra checkpoint key prefixes to ignore.
        hint: appended to the error message (e.g. how to opt out).

    Returns:
        :class:`CheckpointFit`; ``loadable`` holds the fitting tensors.

    Raises:
        CheckpointMismatchError: naming the keys that do not fit.
    """
    own = module.state_dict()
    declared = tuple(getattr(module, 'ignored_checkpoint_prefixes', ()))
    prefixes = tuple(ignore_prefixes) + declared
    ignored = [k for k in state_dict
               if k not in own and prefixes and k.startswith(prefixes)]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own and k not in ignored]
    mismatched = [(k, _shape(state_dict[k]), tuple(own[k].shape))
                  for k in own if k in state_dict
                  and _shape(state_dict[k]) is not None
                  and _shape(state_dict[k]) != tuple(own[k].shape)]
    bad_shape = {k for k, _, _ in mismatched}
    loadable = OrderedDict((k, v) for k, v in state_dict.items()
                           if k in own and k not in bad_shape)
    name = type(module).__name__
    where = f'checkpoint {source}' if source else 'the checkpoint'
    if ignored:
        used = [p for p in prefixes if any(k.startswith(p) for k in ignored)]
        why = (f'{name} declares them unused' if all(
            k.startswith(declared) for k in ignored) else 'ignore_prefixes')
        print_log(f'{where}: ignored {len(ignored)} tensors under '
                  f'{", ".join(used)} ({why})', logger='current')
    parts = []
    if missing:
        parts.append(f'{len(missing)} missing keys: {format_keys(missing)}')
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected keys: '
                     f'{format_keys(unexpected)}')
    if mismatched:
        shapes = [f'{k}: checkpoint {c} vs model {m}'
                  for k, c, m in mismatched]
        parts.append(f'{len(mismatched)} mis-shaped keys: '
                     f'{format_keys(shapes)}')
    if parts and not partial:
        raise CheckpointMismatchError(
            f'{where} does not fit {name}: ' + '; '.join(parts) +
            (f'. {hint}' if hint else ''))
    if partial:
        if not loadable:
            raise CheckpointMismatchError(
                f'{where}: no tensor fits {name} (partial loading needs at '
                f'least one key with the model\'s name and shape); ' +
                '; '.join(parts))
        if parts:
            print_log(
                f'partial load of {where} into {name}: {len(loadable)} of '
                f'{len(own)} tensors loaded; ' + '; '.join(parts),
                logger='current', level=logging.WARNING)
    return CheckpointFit(loadable, missing, unexpected, mismatched, ignored)


def check_state_dict(module: torch.nn.Module, state_dict: Mapping,
                     source: str = '') -> None:
    """Raise :class:`CheckpointMismatchError` naming every missing,
    unexpected and mis-shaped key (strict loading, R7 in
    docs/methods/README.md#common-requirements). Prefixes the module
    declares in ``ignored_checkpoint_prefixes`` are allowed."""
    fit_state_dict(module, state_dict, source)


def load_pretrained_strict(module: torch.nn.Module, checkpoint: str,
                           prefix: str = '', map_location='cpu') -> None:
    """Load ``checkpoint`` (path; weights-only) into ``module`` strictly.

    Args:
        module: target module.
        checkpoint: file path of a vtseg-format checkpoint.
        prefix: keep only keys starting with this prefix and strip it (e.g.
            ``'backbone.'`` to load a backbone from a full-model checkpoint).
    """
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location)
    sd = extract_state_dict(ckpt, checkpoint)
    if prefix:
        if not prefix.endswith('.'):
            prefix += '.'
        sd = OrderedDict((k[len(prefix):], v) for k, v in sd.items()
                         if k.startswith(prefix))
        if not sd:
            raise CheckpointMismatchError(
                f'checkpoint {checkpoint} has no key starting with '
                f'{prefix!r}')
    fit = fit_state_dict(module, sd, checkpoint)
    module.load_state_dict(fit.loadable, strict=True)
    print_log(f'loaded {len(sd)} tensors into {type(module).__name__} from '
              f'{checkpoint}', logger='current')
