"""Interface of token stages: the backbone's extension points.

A token stage runs between two blocks of :class:`vtseg.models.ViT` and may
replace the token set (fewer tokens, a pruning mask, merged tokens) or restore
full resolution. The backbone knows nothing about any particular method; it
only calls these two methods:

* ``stage(grid) -> grid`` after block ``stage.after_block`` (0-based; negative
  values count from the end). The returned :class:`TokenGrid` may hold
  (B, n_prefix + M, C) tokens with M != H * W; the stage records in
  ``grid.restore`` / ``grid.reduced_hw`` what is needed to go back.
* ``stage.restore(grid, tokens) -> (B, n_prefix + H * W, C)`` for a stage
  whose ``after_block`` is None: the backbone's *output restorer*. When an
  output level (``out_indices``) is taken while the grid is reduced, the
  backbone normalises the reduced tokens and hands them to this method.
  Without an output restorer, a reduced grid with ``reduced_hw`` set is
  returned as an (h, w) map (the "restore='none'" behaviour).
"""
from typing import Optional

from mmengine.model import BaseModule
from torch import Tensor

from ..utils import TokenGrid


class BaseTokenStage(BaseModule):
    """Base class of token stages.

    Args:
        after_block: run after this block (0-based, negative from the end);
            None makes the stage an output restorer.
    """

    def __init__(self, after_block: Optional[int] = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.after_block = after_block

    def forward(self, grid: TokenGrid) -> TokenGrid:
        """Transform the token set between blocks."""
        raise NotImplementedError(
            f'{type(self).__name__} cannot run between blocks '
            '(after_block must be None for an output restorer)')

    def restore(self, grid: TokenGrid, tokens: Tensor) -> Tensor:
        """Map (B, n_prefix + M, C) reduced tokens to the full grid.

        Args:
            grid: the current (reduced) grid, holding the restore state.
            tokens: (B, n_prefix + M, C) reduced tokens, already normalised
                as the output level requires.

        Returns:
            (B, n_prefix + H * W, C) full-resolution tokens.
        """
        raise NotImplementedError(
            f'{type(self).__name__} cannot restore outputs')
