"""Pixel-adaptive refinement as a registered module (ToCo, docs/toco.md)."""
from typing import Sequence

import torch.nn as nn
from torch import Tensor

from vtseg.functional.toco import par_refine
from vtseg.registry import MODELS

__all__ = ['PAR']


@MODELS.register_module()
class PAR(nn.Module):
    """:func:`vtseg.functional.par_refine` with fixed ``dilations`` /
    ``num_iter`` (no parameters). (B, 3, H, W) images, (B, K, h, w) masks
    -> (B, K, H, W)."""

    def __init__(self, dilations: Sequence[int] = (1, 2, 4, 8, 12, 24),
                 num_iter: int = 10, renormalize: bool = False):
        super().__init__()
        self.dilations = tuple(dilations)
        self.num_iter = num_iter
        self.renormalize = renormalize

    def forward(self, images: Tensor, masks: Tensor) -> Tensor:
        return par_refine(images, masks, self.dilations, self.num_iter,
                          self.renormalize)
