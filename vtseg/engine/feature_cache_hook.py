"""Memoise a frozen backbone's outputs per training image."""
import hashlib
import re
from typing import Dict, Tuple

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch import Tensor

from vtseg.registry import HOOKS

__all__ = ['FrozenBackboneCacheHook']


def _image_key(img: Tensor) -> str:
    data = img.detach().to('cpu', torch.float32).contiguous().numpy()
    return hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest() + \
        str(tuple(img.shape))


@HOOKS.register_module()
class FrozenBackboneCacheHook(Hook):
    """Cache the backbone outputs of each distinct training input.

    With a fully frozen backbone (no trainable parameter, no active dropout
    or batch norm) the backbone is a fixed per-image function, so training
    can reuse its outputs whenever the same normalised input image comes
    back (e.g. a fixed resize with random flips only: two versions per
    image). Each image of a batch is looked up on its own (blake2b hash of
    its bytes and shape); only the missing ones are run, as one batch. The
    cache lives in memory (``max_items`` images, then no new entries) and
    is only used while the model is in training mode (validation runs the
    backbone as usual). This is a speed device for CPU runs: it changes no
    result beyond floating-point batch-composition noise.

    Raises:
        ValueError: at ``before_train`` if the backbone has trainable
            parameters or active stochastic / batch-statistics layers.

    Args:
        max_items: most images kept.
        method: the memoised call, a dotted path on the model (default
            ``'backbone.forward'``); it must map an input batch (B, ...) to
            a tensor or a tuple of tensors with the batch first (returned in
            the same form), depend on the frozen backbone only, and be
            called with the batch alone
            (e.g. ``'unpruned_prefix'`` of
            :class:`~vtseg.models.segmentors.DToPEncoderDecoder`: the
            tokens at the stage ends that run before any pruning;
            ``'backbone.frozen_prefix'`` of the ViT: the tokens after its
            frozen blocks, when the later blocks train).
        depends_on: regular expression matching the names (in the model) of
            every parameter and module the memoised call uses; all of them
            must be frozen and deterministic (default: the whole backbone).
            E.g. DToP with only blocks 0-5 frozen memoises its first stage
            with ``r'backbone\.(patch_embed|cls_token|reg_token|pos_embed|'
            r'blocks\.[0-5]\.)'``.
    """
    priority = 'LOW'

    def __init__(self, max_items: int = 2048,
                 method: str = 'backbone.forward',
                 depends_on: str = r'backbone\.'):
        self.max_items = max_items
        self.method = method
        self.depends_on = re.compile(depends_on)
        self.hits = 0
        self.misses = 0

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if getattr(model, 'backbone', None) is None:
            raise ValueError('FrozenBackboneCacheHook: the model has no '
                             '`backbone` attribute')
        used = [(n, p) for n, p in model.named_parameters()
                if self.depends_on.match(n)]
        if not used:
            raise ValueError(
                'FrozenBackboneCacheHook: no parameter matches depends_on='
                f'{self.depends_on.pattern!r}')
        trainable = [n for n, p in used if p.requires_grad]
        if trainable:
            raise ValueError(
                'FrozenBackboneCacheHook: the memoised call uses trainable '
                f'parameters ({", ".join(trainable[:3])}, ...); caching '
                'would freeze them. Freeze them (ViT: frozen_blocks) or '
                'remove the hook')
        cache: Dict[str, Tuple[Tensor, ...]] = {}
        owner = model
        *path, name = self.method.split('.')
        for part in path:
            owner = getattr(owner, part, None)
            if owner is None:
                raise ValueError(f'FrozenBackboneCacheHook: the model has '
                                 f'no {self.method!r}')
        original = getattr(owner, name, None)
        if not callable(original):
            raise ValueError(f'FrozenBackboneCacheHook: {self.method!r} is '
                             'not a method of the model')

        def check_deterministic():
            for name, m in model.named_modules():
                if not self.depends_on.match(name + '.'):
                    continue
                active = m.training and (
                    isinstance(m, nn.modules.batchnorm._BatchNorm) or
                    (isinstance(m, nn.Dropout) and m.p > 0) or
                    getattr(m, 'drop_prob', 0) > 0)
                if active:
                    raise ValueError(
                        f'FrozenBackboneCacheHook: backbone module {name} '
                        f'({type(m).__name__}) is random or uses batch '
                        'statistics in training mode; its outputs cannot be '
                        'cached')

        returns_tensor = False  # the call's output type, seen on a miss

        def cached_forward(inputs: Tensor):
            nonlocal returns_tensor
            if not model.training:
                return original(inputs)
            check_deterministic()
            keys = [_image_key(img) for img in inputs]
            missing = [i for i, k in enumerate(keys) if k not in cache]
            fresh = {}
            if missing:
                with torch.no_grad():
                    outs = original(inputs[missing])
                returns_tensor = isinstance(outs, Tensor)
                outs = (outs, ) if returns_tensor else tuple(outs)
                for j, i in enumerate(missing):
                    item = tuple(o[j].detach().clone() for o in outs)
                    fresh[keys[i]] = item
                    if len(cache) < self.max_items:
                        cache[keys[i]] = item
            self.misses += len(missing)
            self.hits += len(keys) - len(missing)
            items = [fresh.get(k) or cache[k] for k in keys]
            outs = tuple(
                torch.stack([it[level] for it in items])
                for level in range(len(items[0])))
            return outs[0] if returns_tensor else outs

        # an instance attribute shadows the method for this model only
        setattr(owner, name, cached_forward)
        self._restore = (owner, name)
        print_log(f'FrozenBackboneCacheHook: caching {self.method} per '
                  f'training image (up to {self.max_items})', 'current')

    def after_train(self, runner) -> None:
        owner, name = self._restore
        delattr(owner, name)
        print_log(f'FrozenBackboneCacheHook: {self.hits} hits, '
                  f'{self.misses} misses', 'current')
