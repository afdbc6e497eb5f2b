"""Loss modules of the connectivity heads (thin wrappers around
:mod:`vtseg.functional.connectivity`)."""
from typing import Dict, Optional, Sequence

import torch.nn as nn
from torch import Tensor

from vtseg.functional.connectivity import (BICON_WEIGHTS, DCONN_WEIGHTS,
                                           bce_on_probs,
                                           connectivity_loss_terms,
                                           instance_to_connectivity,
                                           soft_dice_loss)
from vtseg.registry import MODELS

__all__ = ['ConnectivityLoss', 'BinaryMaskLoss']


@MODELS.register_module()
class ConnectivityLoss(nn.Module):
    """BiconNet / DconnNet connectivity loss
    (docs/methods/connectivity.md#losses).

    Terms (each reported separately as ``<loss_name>_<term>``):

    ========  =========================================  =====  =====
    term      definition                                 bicon  dconn
    ========  =========================================  =====  =====
    ``conn``  BCE(sigmoid(C), conn labels)               0.8    1.0
    ``vote``  BCE(bilateral votes V, conn labels)        0.2    0.2
    ``bce``   BCE(voted map F = max_d V_d, mask)         1.0    1.0
    ``dice``  soft Dice(F, mask), per image              1.0    1.0
    ``edge``  BCE(min_d V_d on edge pixels, 0)           1.0    1.0
    ========  =========================================  =====  =====

    (the multi-class DconnNet form has ``ce`` = CE on voted raw logits in
    place of ``bce``; its weight is ``weights['bce']``). Dice smoothing is
    1e-3 (bicon) / 1e-4 (dconn); the bicon edge term is a mean over all
    pixels, the dconn one is normalised by the number of edge pixels.

    Args:
        variant: ``'bicon'`` (BiconNet, default), ``'dconn'`` or
            ``'dconn_multiclass'``.
        dilations: link distances of the connectivity channels.
        weights: per-term overrides of the variant's defaults (e.g.
            ``dict(edge=0.5)``); a weight of 0 skips nothing but zeroes the
            term's contribution.
        instance_aware: the label map holds instance ids (0 = background,
            1..n): links join pixels of the same instance only, so touching
            instances are not linked; the mask terms use ids > 0.
        faithful: reference quirks (bicon per-column Dice, dconn edge
            normaliser by the predicted edge mass).
        loss_weight: global factor on every term.
        loss_name: prefix of the returned keys (must start with ``loss_``).

    Call: ``loss(conn_logits, seg_label, ignore_index=255)`` with
    ``conn_logits`` (B, K*8*J, H, W) at label size and ``seg_label``
    (B, H, W) or (B, 1, H, W); returns a dict of weighted scalar terms.
    """

    def __init__(self,
                 variant: str = 'bicon',
                 dilations: Sequence[int] = (1, ),
                 weights: Optional[Dict[str, float]] = None,
                 instance_aware: bool = False,
                 faithful: bool = False,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_conn'):
        super().__init__()
        if variant not in ('bicon', 'dconn', 'dconn_multiclass'):
            raise ValueError("ConnectivityLoss: variant must be 'bicon', "
                             f"'dconn' or 'dconn_multiclass', got {variant!r}")
        if instance_aware and variant == 'dconn_multiclass':
            raise ValueError('ConnectivityLoss: instance_aware needs a '
                             'one-class variant')
        defaults = BICON_WEIGHTS if variant == 'bicon' else DCONN_WEIGHTS
        unknown = set(weights or {}) - set(defaults) - {'ce'}
        if unknown:
            raise ValueError(f'ConnectivityLoss: unknown weight keys '
                             f'{sorted(unknown)}; terms are '
                             f'{sorted(defaults)}')
        self.variant = variant
        self.dilations = tuple(dilations)
        self.weights = dict(defaults)
        self.weights.update(weights or {})
        self.weights.setdefault('ce', self.weights['bce'])
        self.instance_aware = instance_aware
        self.faithful = faithful
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, conn_logits: Tensor, seg_label: Tensor,
                ignore_index: Optional[int] = 255,
                **kwargs) -> Dict[str, Tensor]:
        if seg_label.dim() == 3:
            seg_label = seg_label[:, None]
        conn_target = None
        target = seg_label
        if self.instance_aware:
            conn_target = instance_to_connectivity(seg_label, self.dilations,
                                                   ignore_index)
            fg = (seg_label > 0).to(seg_label.dtype)
            if ignore_index is not None:
                fg = fg.masked_fill(seg_label == ignore_index, ignore_index)
            target = fg
        terms = connectivity_loss_terms(
            conn_logits, target, self.variant, self.dilations,
            conn_target=conn_target, ignore_index=ignore_index,
            faithful=self.faithful)
        return {
            f'{self._loss_name}_{k}': self.loss_weight * self.weights[k] * v
            for k, v in terms.items()
        }

    @property
    def loss_name(self) -> str:
        return self._loss_name


@MODELS.register_module()
class BinaryMaskLoss(nn.Module):
    """BCE + soft Dice on a one-channel logit map: the ``bce`` and ``dice``
    terms of :class:`ConnectivityLoss` applied to ``sigmoid(logits)``
    instead of the voted map, for the plain binary control head.

    Args:
        bce_weight, dice_weight: term weights (1, 1).
        dice_smooth: Dice smoothing (1e-3, as bicon).
        loss_name: key prefix.

    Call: ``loss(logits, seg_label, ignore_index=255)`` with logits
    (B, 1, H, W) and labels (B, H, W) in {0, 1, ignore}; returns
    ``{<name>_bce, <name>_dice}``.
    """

    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0,
                 dice_smooth: float = 1e-3, loss_name: str = 'loss_mask'):
        super().__init__()
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.dice_smooth = dice_smooth
        self._loss_name = loss_name

    def forward(self, logits: Tensor, seg_label: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: Optional[int] = 255,
                **kwargs) -> Dict[str, Tensor]:
        if logits.dim() != 4 or logits.shape[1] != 1:
            raise ValueError('BinaryMaskLoss expects (B, 1, H, W) logits, '
                             f'got {tuple(logits.shape)}')
        if seg_label.dim() == 3:
            seg_label = seg_label[:, None]
        valid = None
        if ignore_index is not None:
            valid = (seg_label != ignore_index).float()
            seg_label = seg_label.masked_fill(seg_label == ignore_index, 0)
        if bool(((seg_label != 0) & (seg_label != 1)).any()):
            raise ValueError('BinaryMaskLoss: labels must be 0, 1 or '
                             f'ignore_index={ignore_index}')
        prob = logits.float().sigmoid()
        mask = seg_label.float()
        bce = bce_on_probs(prob, mask, valid)
        if valid is not None:
            prob, mask = prob * valid, mask * valid
        dice = soft_dice_loss(prob, mask, self.dice_smooth)
        return {
            f'{self._loss_name}_bce': self.bce_weight * bce,
            f'{self._loss_name}_dice': self.dice_weight * dice
        }

    @property
    def loss_name(self) -> str:
        return self._loss_name
