"""ALGM token merging as a token stage (docs/token_merging.md, "ALGM").

``AdaptiveTokenMerging`` runs inside its blocks, between the attention
residual and the MLP (as the reference): at ``local_block`` it merges
similar 2x2 windows (CLAP), at each of ``global_blocks`` it merges
bipartite pairs whose similarity passes an adaptive threshold (GBM)
(:mod:`vtseg.functional.local_global_merging`). Every merge pushes a
:class:`GroupMergeState` whose ``undo`` copies each merged token back to
its members, so output levels come back on the full grid (ALGM's
un-merge)::

    backbone=dict(type='ViT', ..., token_stages=[
        dict(type='AdaptiveTokenMerging', local_block=1,
             global_blocks=[5], local_thresh=0.88)])
"""
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from vtseg.functional.local_global_merging import (global_merge_groups,
                                                   local_merge_groups,
                                                   merge_groups,
                                                   merge_groups_index,
                                                   unmerge_groups,
                                                   window_similarity)
from vtseg.registry import MODELS
from ..utils import RestoreState, TokenGrid
from .base import BaseTokenStage

__all__ = ['GroupMergeState', 'AdaptiveTokenMerging', 'GBM_THRESHOLDS']

#: how GBM's threshold is set: the reference's statistics of each forward
#: pass, or a fixed value estimated beforehand (tools/analysis_tools/
#: algm_calibrate.py)
GBM_THRESHOLDS = ('per_forward', 'calibrated')


@dataclass
class GroupMergeState(RestoreState):
    """Restore state of one group merge.

    Attributes:
        assign: (B, M) group of every token before the merge.
        kind: ``'local'`` (CLAP) or ``'global'`` (GBM), for the FLOPs count.
        pairs: metric multiply-adds per image of finding the groups.
    """
    assign: Tensor = None
    kind: str = 'local'
    pairs: int = 0
    owner: str = 'AdaptiveTokenMerging'

    def undo(self, patches: Tensor,
             transform: Optional[Callable[[Tensor], Tensor]] = None
             ) -> Tensor:
        """(B, G, C) -> (B, M, C): each token takes its group's value."""
        return unmerge_groups(patches, self.assign)


@MODELS.register_module()
class AdaptiveTokenMerging(BaseTokenStage):
    """ALGM: local window merging, then adaptive global merging.

    Args:
        local_block: block (0-based) where CLAP merges windows. The tokens
            must be the full patch grid there.
        global_blocks: block or blocks (after ``local_block``) where GBM
            runs; ``[]`` for CLAP alone.
        window: CLAP window (rows, cols); grid rows / columns left over stay
            unmerged.
        local_thresh: CLAP's similarity threshold tau (reference: 0.88 for
            ViT-S on ADE20K, 0.955 on Cityscapes, 0.94 ViT-B, 0.95 ViT-L).
        gbm_threshold: ``'per_forward'`` (the reference: mean + std /
            (block + 1) of the best-match scores of this forward pass) or
            ``'calibrated'`` (``global_thresh``, fixed).
        global_thresh: the calibrated threshold, one value or one per
            global block.
        batch_coupled: the reference's rule of one merge count per batch
            (the minimum over its images) and batch-averaged GBM statistics.
            Default False: each image merges what passes its thresholds, and
            the batch is padded (``valid``), so results do not depend on
            which images share a batch.
    """

    def __init__(self,
                 local_block: int,
                 global_blocks: Union[int, Sequence[int]] = (),
                 window: Sequence[int] = (2, 2),
                 local_thresh: float = 0.88,
                 gbm_threshold: str = 'per_forward',
                 global_thresh: Optional[Union[float, Sequence[float]]] = None,
                 batch_coupled: bool = False,
                 init_cfg=None):
        if isinstance(global_blocks, int):
            global_blocks = [global_blocks]
        global_blocks = [int(b) for b in global_blocks]
        name = type(self).__name__
        if local_block is None or local_block < 0 or \
                any(b < 0 for b in global_blocks):
            raise ValueError(f'{name}: blocks must be >= 0, got local_block='
                             f'{local_block}, global_blocks={global_blocks}')
        if any(b <= local_block for b in global_blocks) or \
                len(set(global_blocks)) != len(global_blocks):
            raise ValueError(f'{name}: global_blocks={global_blocks} must be '
                             f'distinct and after local_block={local_block}')
        super().__init__(after_block=[local_block] + global_blocks,
                         position='attn', init_cfg=init_cfg)
        if len(window) != 2 or window[0] * window[1] < 2:
            raise ValueError(f'{name}: window must be (rows, cols) with at '
                             f'least 2 tokens, got {window}')
        if gbm_threshold not in GBM_THRESHOLDS:
            raise ValueError(f'{name}: gbm_threshold must be one of '
                             f'{GBM_THRESHOLDS}, got {gbm_threshold!r}')
        if gbm_threshold == 'calibrated':
            if global_thresh is None:
                raise ValueError(
                    f"{name}: gbm_threshold='calibrated' needs global_thresh "
                    '(estimate it with tools/analysis_tools/algm_calibrate.py)')
            if not isinstance(global_thresh, (list, tuple)):
                global_thresh = [global_thresh] * len(global_blocks)
            if len(global_thresh) != len(global_blocks):
                raise ValueError(f'{name}: {len(global_thresh)} global_thresh '
                                 f'values for {len(global_blocks)} blocks')
            self.global_thresh = {b: float(t) for b, t in
                                  zip(global_blocks, global_thresh)}
        else:
            self.global_thresh = {}
        self.local_block = int(local_block)
        self.global_blocks = global_blocks
        self.window = tuple(int(w) for w in window)
        self.local_thresh = float(local_thresh)
        self.gbm_threshold = gbm_threshold
        self.batch_coupled = batch_coupled

    def forward(self, grid: TokenGrid, block: Optional[int] = None,
                keys: Optional[Tensor] = None) -> TokenGrid:
        patches = grid.patches          # ALGM matches on the features
        n = grid.n_prefix
        if block == self.local_block:
            if grid.layout != grid.hw:
                raise ValueError(
                    f'{type(self).__name__}: local merging at block {block} '
                    'needs the full patch grid, but the token set was '
                    'already changed by '
                    f'{grid.restores[-1].owner if grid.restores else "?"}')
            sim = window_similarity(patches, grid.hw, self.window)
            assign, groups = local_merge_groups(
                sim, grid.hw, self.window, self.local_thresh,
                self.batch_coupled)
            k = self.window[0] * self.window[1]
            state = GroupMergeState(assign=assign, kind='local',
                                    pairs=sim[0].numel() * k * k)
        else:
            M = grid.num_tokens
            assign, groups = global_merge_groups(
                patches, layer_idx=block + 1, valid=grid.valid, offset=n,
                thresh=self.global_thresh.get(block),
                batch_coupled=self.batch_coupled)
            a = len(range(n % 2, M, 2))
            state = GroupMergeState(assign=assign, kind='global',
                                    pairs=a * (M - a) + M)
        merged, size, valid = merge_groups(patches, assign, groups,
                                           grid.size, grid.valid)
        index = merge_groups_index(grid.index, assign, groups, grid.valid)
        return grid.push(state, x=torch.cat([grid.prefix, merged], dim=1),
                         index=index, size=size, valid=valid,
                         reduced_hw=None, attn_bias=None)

    def flops(self, call: str, args: tuple, output,
              mode: str) -> Optional[int]:
        """Multiply-adds of one merge (whole batch): the cosine scores on
        the C-dim features (CLAP: all pairs inside each window, GBM: the
        (Ma, Mb) scores plus the normalisation); means and copies are
        elementwise (not counted, as everywhere in the counter)."""
        grid = args[0]
        if output.restores is grid.restores:
            return 0
        state = output.restores[-1]
        return grid.x.shape[0] * state.pairs * grid.x.shape[-1]
