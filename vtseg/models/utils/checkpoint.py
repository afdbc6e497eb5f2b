"""Strict loading of pretrained weights into vtseg modules."""
from collections import OrderedDict
from typing import Mapping

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the model (missing / unexpected / shape)."""


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


def check_state_dict(module: torch.nn.Module, state_dict: Mapping,
                     source: str = '') -> None:
    """Raise :class:`CheckpointMismatchError` naming every missing,
    unexpected and mis-shaped key (strict loading, R7 in
    docs/methods/README.md#common-requirements)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
        f'{tuple(own[k].shape)}' for k in own
        if k in state_dict and hasattr(state_dict[k], 'shape')
        and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f'missing keys: {missing}')
        if unexpected:
            parts.append(f'unexpected keys: {unexpected}')
        if shapes:
            parts.append(f'shape mismatch: {shapes}')
        raise CheckpointMismatchError(
            f'checkpoint {source} does not fit {type(module).__name__}: ' +
            '; '.join(parts))


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
    check_state_dict(module, sd, checkpoint)
    module.load_state_dict(sd, strict=True)
    print_log(f'loaded {len(sd)} tensors into {type(module).__name__} from '
              f'{checkpoint}', logger='current')
