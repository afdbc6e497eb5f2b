"""Strict checkpoint loading for mmengine's Runner (``load_from``,
``--resume``, ``tools/test.py CONFIG CHECKPOINT``)."""
import re
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper

from vtseg.models.utils.checkpoint import fit_state_dict
from vtseg.registry import HOOKS

__all__ = ['StrictLoadHook']

# mmengine's Runner.load_checkpoint strips this before loading (its default
# revise_keys); the check compares the names the model will see.
_WRAPPER_PREFIX = re.compile(r'^module\.')


@HOOKS.register_module()
class StrictLoadHook(Hook):
    """Refuse a checkpoint that does not fit the model, before it is loaded.

    mmengine's ``Runner.load_checkpoint`` loads non-strictly and only logs
    missing / unexpected keys, so a checkpoint that does not fit the config
    (random weights, a missing decode head, a mis-shaped ``pos_embed``,
    another model's file) would be evaluated or fine-tuned without an
    error. This hook runs in ``after_load_checkpoint`` (called by the Runner
    between reading the file and loading it into the model) and applies
    :func:`vtseg.models.utils.checkpoint.fit_state_dict`: missing,
    unexpected and mis-shaped keys raise
    :class:`~vtseg.models.utils.checkpoint.CheckpointMismatchError` naming
    them. Checkpoint keys under prefixes the model declares unused
    (``ignored_checkpoint_prefixes``, e.g. TokenCut's ``decode_head.``) or
    under ``ignore_prefixes`` are removed from the checkpoint with a log
    line. ``tools/train.py`` and ``tools/test.py`` add this hook unless the
    config lists one (docs/reliability.md#checkpoint-loading).

    Args:
        partial: load only the tensors whose names and shapes fit (the
            others are removed from the checkpoint and logged as a
            warning); a checkpoint of which nothing fits is still refused.
            ``--partial-load`` on the command lines.
        ignore_prefixes: checkpoint key prefixes to drop silently apart from
            one log line (e.g. ``['ema_']``).
    """
    priority = 'VERY_HIGH'

    def __init__(self, partial: bool = False,
                 ignore_prefixes: Optional[Sequence[str]] = None) -> None:
        self.partial = bool(partial)
        self.ignore_prefixes = tuple(ignore_prefixes or ())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Check ``checkpoint`` (as read from disk) against the model; drop
        ignored (and, when partial, non-fitting) tensors in place."""
        model = runner.model
        # mmengine's load_state_dict loads into the wrapped model of a
        # DDP wrapper or a TTA model (tools/test.py --tta)
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        # the same container mmengine's _load_checkpoint_to_model loads
        container = checkpoint['state_dict'] if 'state_dict' in checkpoint \
            else checkpoint
        names = {_WRAPPER_PREFIX.sub('', k): k for k in container}
        source = runner.cfg.get('load_from') or ''
        fit = fit_state_dict(
            model, {n: container[k] for n, k in names.items()},
            source=source, partial=self.partial,
            ignore_prefixes=self.ignore_prefixes,
            hint='Use a checkpoint of this config, or load the fitting '
            'tensors only with --partial-load (docs/reliability.md)')
        drop = set(names) - set(fit.loadable)
        for name in drop:
            del container[names[name]]
