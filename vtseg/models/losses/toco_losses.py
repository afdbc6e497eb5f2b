"""ToCo's losses as registered modules around :mod:`vtseg.functional.toco`
(docs/toco.md)."""
import torch.nn as nn
from torch import Tensor

from vtseg.functional.toco import balanced_seg_loss, ctc_loss, ptc_loss
from vtseg.registry import MODELS

__all__ = ['PTCLoss', 'CTCLoss', 'BalancedSegLoss']


@MODELS.register_module()
class PTCLoss(nn.Module):
    """Patch token contrast: ``loss_weight * ptc_loss(tokens, affinity)``
    (:func:`vtseg.functional.ptc_loss`)."""

    def __init__(self, loss_weight: float = 0.2):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, tokens: Tensor, affinity: Tensor) -> Tensor:
        return self.loss_weight * ptc_loss(tokens, affinity)


@MODELS.register_module()
class CTCLoss(nn.Module):
    """Class token contrast: ``loss_weight * ctc_loss(student, teacher,
    flags, temp)`` (:func:`vtseg.functional.ctc_loss`; ``extra_term``
    keeps the reference's always-added negatives-only term)."""

    def __init__(self, loss_weight: float = 0.5, temp: float = 0.5,
                 extra_term: bool = True):
        super().__init__()
        self.loss_weight = loss_weight
        self.temp = temp
        self.extra_term = extra_term

    def forward(self, student: Tensor, teacher: Tensor,
                flags: Tensor) -> Tensor:
        return self.loss_weight * ctc_loss(student, teacher, flags,
                                           self.temp, self.extra_term)


@MODELS.register_module()
class BalancedSegLoss(nn.Module):
    """``loss_weight * 0.5 * (CE background + CE foreground)``
    (:func:`vtseg.functional.balanced_seg_loss`; ``faithful=True`` is the
    reference's NaN-on-empty-group version)."""

    def __init__(self, loss_weight: float = 0.1, ignore_index: int = 255,
                 faithful: bool = False):
        super().__init__()
        self.loss_weight = loss_weight
        self.ignore_index = ignore_index
        self.faithful = faithful

    def forward(self, logits: Tensor, label: Tensor) -> Tensor:
        return self.loss_weight * balanced_seg_loss(
            logits, label, self.ignore_index, self.faithful)
