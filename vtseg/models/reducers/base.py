"""Interface of token stages: the backbone's extension points.

A token stage runs inside the block loop of :class:`vtseg.models.ViT` and
may replace the token set (prune, pack, merge, cluster) or rebuild it. The
backbone knows nothing about any particular method; it calls:

* ``stage(grid, block=i, keys=k) -> grid`` at each block listed in
  ``stage.after_block`` (0-based, negative from the end; a list calls the
  **same instance** at every listed block). With ``position='block'``
  (default) the stage runs after block i; with ``position='attn'`` it runs
  inside block i, between the attention residual and the MLP, and ``keys``
  is that block's attention keys (B, heads, T, C/heads) (what token merging
  needs); otherwise ``keys`` is None. A stage that changes the token set
  pushes a :class:`~vtseg.models.utils.RestoreState` on the grid's restore
  stack (:meth:`TokenGrid.push`).
* ``stage.restores(state)`` / ``stage.restore(grid, tokens)`` for an
  *output restorer* (``after_block=None``): when an output level is taken
  while the restore stack is not empty, the backbone normalises the tokens
  and unwinds the stack from the top: each state is undone by the first
  output restorer that claims it (``restores(state)`` True), else by the
  state's own :meth:`RestoreState.undo`. If a state can be undone by
  neither, unwinding stops there and the level is returned on the regular
  grid the tokens form at that point (``TokenGrid.reduced_hw``, Expedit's
  ``restore='none'``), else the backbone raises an error naming the stage.
* ``stage.flops(call, args, output, mode)``: the stage's own multiply-adds
  for the FLOPs counter (``vtseg.analysis``); None lets the counter trace
  the stage's operators instead.
"""
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.model import BaseModule
from torch import Tensor

from ..utils import RestoreState, TokenGrid

__all__ = ['BaseTokenStage', 'STAGE_POSITIONS']

#: where in a block a stage runs: after the whole block, or between the
#: block's attention residual and its MLP.
STAGE_POSITIONS = ('block', 'attn')


class BaseTokenStage(BaseModule):
    """Base class of token stages.

    Args:
        after_block: block index, or a list of block indices at each of
            which this same instance runs (0-based, negative from the end);
            None makes the stage an output restorer.
        position: ``'block'`` (after the block) or ``'attn'`` (between the
            block's attention and MLP, with the block's keys).
    """

    def __init__(self,
                 after_block: Optional[Union[int, Sequence[int]]] = None,
                 position: str = 'block',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if position not in STAGE_POSITIONS:
            raise ValueError(f'{type(self).__name__}: position must be one '
                             f'of {STAGE_POSITIONS}, got {position!r}')
        if position == 'attn' and after_block is None:
            raise ValueError(f"{type(self).__name__}: position='attn' needs "
                             'after_block (an output restorer runs at the '
                             'outputs)')
        if isinstance(after_block, (list, tuple)):
            after_block = list(after_block)
            if not after_block:
                raise ValueError(f'{type(self).__name__}: after_block is an '
                                 'empty list')
        self.after_block = after_block
        self.position = position

    @property
    def blocks(self) -> List[int]:
        """``after_block`` as a list (empty for an output restorer)."""
        if self.after_block is None:
            return []
        if isinstance(self.after_block, list):
            return list(self.after_block)
        return [self.after_block]

    def forward(self, grid: TokenGrid, block: Optional[int] = None,
                keys: Optional[Tensor] = None) -> TokenGrid:
        """Transform the token set at block ``block`` (keys: see module
        docstring)."""
        raise NotImplementedError(
            f'{type(self).__name__} cannot run between blocks '
            '(after_block must be None for an output restorer)')

    def restores(self, state: RestoreState) -> bool:
        """Whether this output restorer undoes ``state``."""
        return False

    def restore(self, grid: TokenGrid,
                tokens: Tensor) -> Tuple[TokenGrid, Tensor]:
        """Undo the state(s) on top of ``grid``'s restore stack that this
        restorer claims.

        Args:
            grid: the grid whose stack is unwound.
            tokens: (B, n_prefix + M, C) tokens of the grid's current layout,
                already normalised as the output level requires.

        Returns:
            (the grid with those states popped, (B, n_prefix + M_prev, C)
            tokens of the layout below them). A restorer that hands the
            level to the decode head may return a
            :class:`~vtseg.models.utils.ClusteredFeatureMap` instead, once
            the stack is empty.
        """
        raise NotImplementedError(
            f'{type(self).__name__} cannot restore outputs')

    def flops(self, call: str, args: tuple, output,
              mode: str) -> Optional[int]:
        """Multiply-adds of one call on the whole batch.

        Args:
            call: ``'forward'`` or ``'restore'``.
            args: the call's positional arguments.
            output: what the call returned.
            mode: ``'executed'`` (what the implementation evaluates) or
                ``'spec'`` (the method's dense formulas).

        Returns:
            The count, or None to count the traced operators instead.
        """
        return None
