"""ToMe token merging as a token stage (docs/methods/token_merging.md).

``TokenMerging`` runs inside the listed blocks, between the attention
residual and the MLP (``position='attn'``), matches on that block's keys
averaged over heads and merges ``r`` patch tokens per image
(:mod:`vtseg.functional.token_merging`). Merges accumulate over the blocks
(ToMe's classic behaviour, "carry"): sizes are tracked in the token record's
``size``, later blocks get proportional attention through ``attn_bias``, and
every merge pushes a :class:`MergeState` whose ``undo`` copies each merged
token back to its sources, so the backbone's output levels come back on the
full grid without a separate restorer::

    backbone=dict(type='ViT', ..., token_stages=[
        dict(type='TokenMerging', after_block=list(range(12)), r=16)])
"""
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

from torch import Tensor

from vtseg.functional.token_merging import (MergePlan, bipartite_matching,
                                            merge_index, merge_tokens,
                                            proportional_attention_bias,
                                            unmerge_tokens)
from vtseg.registry import MODELS
from ..utils import RestoreState, TokenGrid
from .base import BaseTokenStage

__all__ = ['MergeState', 'TokenMerging']


@dataclass
class MergeState(RestoreState):
    """Restore state of one merge: the plan that maps the tokens before it
    to the merged set."""
    plan: MergePlan
    metric_dims: int = 0
    owner: str = 'TokenMerging'

    def undo(self, patches: Tensor,
             transform: Optional[Callable[[Tensor], Tensor]] = None
             ) -> Tensor:
        """(B, M - r, C) -> (B, M, C): each source takes its partner's
        value (``transform`` is per token, so it commutes with the copy)."""
        return unmerge_tokens(patches, self.plan)


@MODELS.register_module()
class TokenMerging(BaseTokenStage):
    """ToMe: merge ``r`` patch tokens per image in each listed block.

    Args:
        after_block: block index or list of block indices.
        r: tokens merged per block, one int for every listed block or a
            list with one entry per listed block (ToMe's schedules written
            out); clipped to half the current patch tokens.
        prop_attn: proportional attention in later blocks (log of the token
            sizes added to the attention logits); ToMe's default off the
            shelf.
        position: ``'attn'`` (ToMe: between attention and MLP, matching on
            the block's keys) or ``'block'`` (after the block, matching on
            the tokens themselves).

    Prefix tokens (cls, registers) never merge. Images are merged
    independently with the same count, so batches stay dense; a token set
    with padding (``valid``, e.g. after pruning) is refused.
    """

    def __init__(self,
                 after_block: Union[int, Sequence[int]],
                 r: Union[int, Sequence[int]] = 8,
                 prop_attn: bool = True,
                 position: str = 'attn',
                 init_cfg=None):
        if after_block is None:
            raise ValueError('TokenMerging: after_block is required (merges '
                             'undo themselves at the outputs)')
        super().__init__(after_block=after_block, position=position,
                         init_cfg=init_cfg)
        blocks = self.blocks
        if any(b < 0 for b in blocks):
            # r is looked up by the block index the backbone passes
            raise ValueError('TokenMerging: after_block must be >= 0, got '
                             f'{after_block}')
        if isinstance(r, (list, tuple)):
            if len(r) != len(blocks):
                raise ValueError(
                    f'TokenMerging: r has {len(r)} entries for '
                    f'{len(blocks)} blocks in after_block={after_block}')
            self.r = {b: int(v) for b, v in zip(blocks, r)}
        else:
            self.r = {b: int(r) for b in blocks}
        bad = {b: v for b, v in self.r.items() if v < 0}
        if bad:
            raise ValueError(f'TokenMerging: r must be >= 0, got {bad}')
        self.prop_attn = prop_attn

    def forward(self, grid: TokenGrid, block: Optional[int] = None,
                keys: Optional[Tensor] = None) -> TokenGrid:
        if grid.valid is not None:
            raise ValueError(
                'TokenMerging: the token set has padding (valid mask, e.g. '
                'after pruning); merge before pruning stages')
        r = self.r.get(block, 0)
        if r == 0 or grid.num_tokens < 2:
            return grid
        n = grid.n_prefix
        if keys is not None:
            metric = keys[:, :, n:].mean(dim=1)       # (B, M, C/heads)
        else:
            metric = grid.patches
        plan = bipartite_matching(metric, r, offset=n)
        x, size = merge_tokens(grid.patches, plan, grid.size, grid.prefix)
        bias = proportional_attention_bias(size, n) if self.prop_attn \
            else None
        state = MergeState(plan=plan, metric_dims=metric.shape[-1])
        return grid.push(state, x=x,
                         index=merge_index(grid.index, plan), size=size,
                         valid=None, reduced_hw=None, attn_bias=bias)

    def flops(self, call: str, args: tuple, output,
              mode: str) -> Optional[int]:
        """Multiply-adds of one merge (whole batch): the (Ma, Mb) cosine
        scores on the D-dim metric, plus the metric's normalisation (M * D);
        the weighted sums are elementwise (not counted, as everywhere in the
        counter). No merge (r = 0): 0."""
        grid = args[0]
        if output.restores is grid.restores:
            return 0
        state = output.restores[-1]
        a, b = len(state.plan.a_pos), len(state.plan.b_pos)
        return grid.x.shape[0] * (a * b + a + b) * state.metric_dims

