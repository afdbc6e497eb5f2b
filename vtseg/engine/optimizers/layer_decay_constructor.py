"""Layer-wise learning-rate decay for the vtseg ViT (BEiT / MAE / ViTDet).

Every trainable parameter gets a layer id:

* the embeddings (``patch_embed``, ``cls_token``, ``reg_token``,
  ``pos_embed`` under ``backbone.``): 0;
* ``backbone. ... blocks.{i}. ...``: i + 1;
* everything else (the backbone's final norm and token stages, necks,
  decode / auxiliary heads, including heads that have their own ``blocks``):
  ``num_layers + 1``;

and the learning rate ``lr * layer_decay_rate ** (num_layers + 1 -
layer_id)``. Weight decay is off for 1-D parameters (norms, biases,
LayerScale) and for ``pos_embed``, ``cls_token``, ``reg_token``,
``rel_pos_h`` and ``rel_pos_w``. docs/backbone.md, "Layer-wise
learning-rate decay".
"""
import re
from typing import Dict, List, Optional, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from vtseg.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['ViTLayerDecayOptimizerConstructor', 'vit_layer_id']

#: parameter names (last component) that never get weight decay.
NO_DECAY_NAMES = ('pos_embed', 'cls_token', 'reg_token', 'rel_pos_h',
                  'rel_pos_w')
_EMBED_RE = re.compile(r'(^|\.)(patch_embed|cls_token|reg_token|pos_embed)'
                       r'(\.|$)')
_BLOCK_RE = re.compile(r'(?:^|\.)blocks\.(\d+)\.')
_BACKBONE_RE = re.compile(r'^(?:module\.)?backbone\.')
_KNOWN_KEYS = ('layer_decay_rate', 'num_layers', 'decay_mult',
               'no_decay_names')


def vit_layer_id(name: str, num_layers: int) -> int:
    """Layer id of parameter ``name`` of a segmentor (see module docstring):
    0 for the backbone embeddings, i + 1 for ``backbone.*blocks.{i}.*``,
    ``num_layers + 1`` for everything else."""
    m = _BACKBONE_RE.match(name)
    if m is None:
        return num_layers + 1
    inner = name[m.end():]
    if _EMBED_RE.search(inner):
        return 0
    b = _BLOCK_RE.search(inner)
    if b is not None:
        return int(b.group(1)) + 1
    return num_layers + 1


def _max_block(names) -> Optional[int]:
    found = [int(b.group(1)) for n in names
             if (m := _BACKBONE_RE.match(n)) is not None
             and (b := _BLOCK_RE.search(n[m.end():])) is not None]
    return max(found) if found else None


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ViTLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Optimizer wrapper constructor with layer-wise lr decay for a
    segmentor whose backbone is the vtseg ``ViT``.

    ``paramwise_cfg``:

    * ``layer_decay_rate`` (required): float in (0, 1]; e.g. 0.7 (ViTDet
      ViT-B), 0.65 (BEiT / MAE ViT-B fine-tuning).
    * ``num_layers``: number of backbone blocks; default: the highest
      ``backbone.*blocks.{i}`` index + 1 among the parameter names.
    * ``decay_mult``: multiplier of the optimizer's ``weight_decay`` for the
      parameters that decay (default 1.0).
    * ``no_decay_names``: parameter names (last dotted component) without
      weight decay, besides every 1-D parameter (default
      :data:`NO_DECAY_NAMES`).

    Parameters are grouped by (layer id, decay / no decay); frozen
    parameters (``requires_grad=False``) are left out of the optimizer. The
    groups carry ``layer_id`` and ``lr_scale`` and are ordered from the top
    layer (scale 1) down, so the ``lr`` that mmengine logs (the first
    group's) is the base learning rate. The groups are logged once.
    """

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        cfg = dict(self.paramwise_cfg)
        unknown = sorted(set(cfg) - set(_KNOWN_KEYS))
        if unknown:
            raise ValueError(
                f'ViTLayerDecayOptimizerConstructor: unknown paramwise_cfg '
                f'keys {unknown}; accepted: {list(_KNOWN_KEYS)}')
        if 'layer_decay_rate' not in cfg:
            raise ValueError('ViTLayerDecayOptimizerConstructor needs '
                             'paramwise_cfg.layer_decay_rate (e.g. 0.75)')
        rate = cfg['layer_decay_rate']
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) \
                or not 0 < rate <= 1:
            raise ValueError(
                'ViTLayerDecayOptimizerConstructor: layer_decay_rate must be '
                f'a number in (0, 1], got {rate!r}')
        num_layers = cfg.get('num_layers')
        if num_layers is not None and (isinstance(num_layers, bool) or
                                       not isinstance(num_layers, int)
                                       or num_layers < 1):
            raise ValueError(
                'ViTLayerDecayOptimizerConstructor: num_layers must be a '
                f'positive int, got {num_layers!r}')
        decay_mult = cfg.get('decay_mult', 1.0)
        if isinstance(decay_mult, bool) or \
                not isinstance(decay_mult, (int, float)) or decay_mult < 0:
            raise ValueError(
                'ViTLayerDecayOptimizerConstructor: decay_mult must be a '
                f'number >= 0, got {decay_mult!r}')
        if self.base_lr is None:
            raise ValueError('ViTLayerDecayOptimizerConstructor: the '
                             'optimizer config needs lr')
        self.layer_decay_rate = float(rate)
        self.num_layers = num_layers
        self.decay_mult = float(decay_mult)
        self.no_decay_names = tuple(cfg.get('no_decay_names', NO_DECAY_NAMES))

    def add_params(self, params: List[dict], module: nn.Module,
                   prefix: str = '', **kwargs) -> None:
        """Append the layer-decay parameter groups of ``module`` to
        ``params``."""
        named = [(prefix + n, p) for n, p in module.named_parameters()]
        num_layers = self.num_layers
        top = _max_block(n for n, _ in named)
        if num_layers is None:
            if top is None:
                raise ValueError(
                    'ViTLayerDecayOptimizerConstructor: no backbone block '
                    'parameters (backbone.*blocks.{i}.*) found to infer '
                    'num_layers; set paramwise_cfg.num_layers')
            num_layers = top + 1
        elif top is not None and top >= num_layers:
            raise ValueError(
                f'ViTLayerDecayOptimizerConstructor: num_layers={num_layers} '
                f'but the backbone has block index {top}')
        base_wd = self.base_wd or 0.0
        groups: Dict[Tuple[int, bool], dict] = {}
        n_frozen = 0
        for name, p in named:
            if not p.requires_grad:
                n_frozen += 1
                continue
            layer_id = vit_layer_id(name, num_layers)
            no_decay = p.ndim == 1 or \
                name.rsplit('.', 1)[-1] in self.no_decay_names
            key = (layer_id, not no_decay)
            if key not in groups:
                scale = self.layer_decay_rate**(num_layers + 1 - layer_id)
                groups[key] = dict(
                    params=[], lr=self.base_lr * scale,
                    weight_decay=0.0 if no_decay else
                    base_wd * self.decay_mult,
                    layer_id=layer_id, lr_scale=scale,
                    group_name=f'layer_{layer_id}_'
                    f'{"decay" if not no_decay else "no_decay"}',
                    _names=[])
            groups[key]['params'].append(p)
            groups[key]['_names'].append(name)
        ordered = [groups[k] for k in sorted(groups, key=lambda k: (-k[0],
                                                                    not k[1]))]
        lines = [f'layer-wise lr decay: rate {self.layer_decay_rate}, '
                 f'{num_layers} layers, base lr {self.base_lr}, weight decay '
                 f'{base_wd} (x{self.decay_mult}); {len(ordered)} groups'
                 + (f', {n_frozen} frozen parameters skipped'
                    if n_frozen else '')]
        for g in ordered:
            names = g.pop('_names')
            shown = ', '.join(names[:3]) + (
                f' ... (+{len(names) - 3})' if len(names) > 3 else '')
            lines.append(f'  {g["group_name"]:>20}: lr {g["lr"]:.3e} '
                         f'(x{g["lr_scale"]:.4f}), wd {g["weight_decay"]:g},'
                         f' {len(names)} tensors: {shown}')
        print_log('\n'.join(lines), logger='current')
        params.extend(ordered)
