"""Expedit token stages: clustering after one block, reconstruction after a
later block or at the backbone outputs (docs/methods/expedit.md).

Both plug into :class:`vtseg.models.ViT` through ``token_stages``; any vtseg
ViT model gains Expedit from its config alone::

    backbone=dict(type='ViT', ..., token_stages=[
        dict(type='TokenClustering', after_block=9, grid=(28, 28)),
        dict(type='TokenReconstruction', after_block=None, k=20),
    ])

``after_block=None`` makes the reconstruction the backbone's output restorer
(``restore='backbone'``, the default hourglass design): every output level
taken after clustering is rebuilt to the full (H, W) grid after that level's
norm. Leave the reconstruction out to get the (h, w) cluster grid at the
outputs (``restore='none'``, Expedit-Segmenter as shipped). With
``after_block=i`` the full token set is rebuilt after block i and later
blocks run on all tokens again. :func:`expedit_token_stages` builds both
dicts from one set of keys and checks them together.

vtseg extensions (not in the paper; the paper's behaviour is the default):

* ``distance='layernorm'`` / ``'l2'``: assignments and reconstruction
  weights use per-token standardised / unit-norm features, while the
  cluster tokens are still averages of the raw tokens;
* ``temperature_mode='relative'``: squared distances are divided by the
  image's feature scale (mean squared deviation of its tokens from their
  mean), so one temperature serves features of any magnitude;
* nested clustering: a second ``TokenClustering`` after a later block, with
  no reconstruction in between, clusters the (h, w) cluster grid again (its
  ``grid`` is relative to that grid); the reconstruction then rebuilds
  through every level, innermost first. ``expedit_token_stages`` takes a
  list of cluster layers and grids for this;
* ``TokenReconstruction(defer_to_head=True)`` (``restore='head'``): the
  output level goes to the decode head as a
  :class:`~vtseg.models.utils.ClusteredFeatureMap`; the head applies its
  first linear layer to the cluster tokens and rebuilds its products (the
  reconstruction is linear in the cluster tokens), same outputs, less work;
* ``keep_outliers=q``: the fraction q of the tokens that the clustering
  represents worst (largest distance to their own centre) stays out of it;
  later blocks run on ``[clusters, kept tokens]`` and the reconstruction
  copies each kept token back to its position (docs/expedit.md, "Keeping
  outliers unclustered");
* ``prop_attn=True``: later blocks weight each cluster by the patches of
  its hard label (kept tokens count once, in their own token only)
  through a log-size attention bias, as ToMe's proportional attention.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from vtseg.functional import proportional_attention_bias
from vtseg.functional.expedit import (apply_reconstruction, cluster_flops,
                                      cluster_hard_labels,
                                      cluster_token_sequence,
                                      clustering_outliers, keep_unclustered,
                                      reconstruct_flops, reconstruct_tokens,
                                      reconstruction_weights,
                                      resolve_cluster_grid,
                                      window_candidates)
from vtseg.registry import MODELS
from ..utils import ClusteredFeatureMap, RestoreState, TokenGrid
from .base import BaseTokenStage

__all__ = [
    'ExpeditState', 'TokenClustering', 'TokenReconstruction',
    'expedit_token_stages', 'expedit_levels'
]

_DISTANCES = ('raw', 'layernorm', 'l2')
_TEMPERATURE_MODES = ('absolute', 'relative')

GridSpec = Union[int, float, Sequence[int]]


@dataclass
class ExpeditState(RestoreState):
    """What one clustering pushes on the grid's restore stack.

    Attributes:
        feat_before: (B, N, D) distance features of the patch tokens at
            clustering time (the raw tokens with ``distance='raw'``).
        feat_after: (B, M, D) distance features of the centres.
        grid: (h, w) cluster grid, M = h * w.
        scale: (B,) feature scale per image (``temperature_mode=
            'relative'``), else None.
        after_block: the clustering stage's ``after_block``.
        hw: (H, W) layout of the N tokens that were clustered: the patch
            grid, or the cluster grid of an earlier clustering (nested).
        window_size, faithful: the clustering's, for :attr:`hard_labels`.
        labels: (B, N) hard labels if already computed, else None.
        keep: (B, K) int64 positions (in ``hw``) of the tokens kept out of
            the clustering (``keep_outliers``), appended after the M
            clusters; None when none are kept.
        owner: stage name for error messages.

    :attr:`hard_labels` ((B, N) int64, nearest centre of each token) is
    computed on first use: only naive unpooling needs it. A clustering has
    no default undo: a :class:`TokenReconstruction` restores it (without
    one, outputs stay on the cluster grid).
    """
    feat_before: Tensor
    feat_after: Tensor
    grid: Tuple[int, int]
    scale: Optional[Tensor] = None
    after_block: Optional[int] = None
    hw: Optional[Tuple[int, int]] = None
    window_size: int = 5
    faithful: bool = False
    labels: Optional[Tensor] = None
    keep: Optional[Tensor] = None
    owner: str = 'TokenClustering'

    @property
    def num_tokens(self) -> int:
        """Patch tokens after this clustering: M clusters + K kept."""
        kept = 0 if self.keep is None else self.keep.shape[1]
        return self.grid[0] * self.grid[1] + kept

    @property
    def hard_labels(self) -> Tensor:
        """(B, N) int64 nearest centre of each token (within the window,
        or over all clusters with ``faithful``)."""
        if self.labels is None:
            self.labels = cluster_hard_labels(
                self.feat_before, self.feat_after, self.hw, self.grid,
                self.window_size, self.faithful)
        return self.labels


def expedit_levels(grid: TokenGrid) -> List[ExpeditState]:
    """The clusterings on top of ``grid``'s restore stack, innermost
    (latest) first: the states a reconstruction undoes, in that order."""
    levels = []
    for state in reversed(grid.restores):
        if not isinstance(state, ExpeditState):
            break
        levels.append(state)
    return levels


def _check_grid_spec(grid: GridSpec, owner: str) -> None:
    """Type / range checks that do not need the token grid."""
    try:
        resolve_cluster_grid(grid, (1 << 30, 1 << 30))
    except (TypeError, ValueError) as err:
        raise type(err)(f'{owner}: {err}') from None


def _distance_features(x: Tensor, distance: str) -> Tensor:
    """(B, N, C) tokens -> (B, N, C) features whose squared distances drive
    assignments and reconstruction weights."""
    if distance == 'raw':
        return x
    if distance == 'layernorm':
        return F.layer_norm(x.float(), x.shape[-1:]).to(x.dtype)
    return F.normalize(x.float(), dim=-1).to(x.dtype)


def _feature_scale(feat: Tensor) -> Tensor:
    """(B, N, D) -> (B,) mean squared deviation of the tokens from their
    mean (fp32, at least 1e-12)."""
    f = feat.float()
    dev = f - f.mean(1, keepdim=True)
    return (dev * dev).sum(-1).mean(1).clamp(min=1e-12)


@MODELS.register_module()
class TokenClustering(BaseTokenStage):
    """Cluster the patch tokens into an (h, w) grid after a block.

    Prefix tokens (cls, registers) pass through unchanged. The clustering
    state (an :class:`ExpeditState`) is pushed on the grid's restore stack,
    ``grid.reduced_hw`` is set to (h, w) and ``grid.index`` to -1 (cluster
    tokens stand for several patches). On tokens that an earlier
    ``TokenClustering`` already clustered (no reconstruction in between) it
    clusters that (h', w') cluster grid again, pushing a second state
    (nested clustering); ``grid`` is then relative to (h', w'). Irregular
    token sets (pruned, packed, merged) are refused.

    Args:
        after_block: block after which to cluster (0-based; negative from the
            end). The paper's "location" / alpha - 1.
        grid: (h, w); a perfect-square int (the reference's ``num_spixels``,
            faithful); or a float scale of the token grid (e.g. 0.7 maps a
            40 x 40 grid to 28 x 28).
        n_iters: soft k-means iterations.
        temperature: inverse temperature t in softmax(-t * distance).
        window_size: odd locality window, in cells.
        faithful: hard labels by unmasked argmin (reference quirk 9,
            docs/methods/expedit.md#quirks).
        distance: ``'raw'`` (paper), ``'layernorm'`` or ``'l2'`` (see module
            docstring).
        temperature_mode: ``'absolute'`` (paper) or ``'relative'``.
        keep_outliers: fraction q in [0, 1) of the clustered tokens kept
            out of the clustering (vtseg extension, default 0: the paper):
            the round(q * N) tokens with the largest squared distance to
            their own centre (:func:`vtseg.functional.clustering_outliers`)
            follow the clusters as tokens of their own. The same count in
            every image keeps the batch dense; which tokens depends on the
            image. The token set is then no regular grid, so no nested
            clustering can follow.
        prop_attn: weight every token in the attention of later blocks by
            the patches it stands for (vtseg extension, default False):
            ``grid.size`` becomes the hard-label count of each cluster
            (kept tokens left out of their cluster's count, 1 each; at
            least 1e-4, so an emptied cluster is all but ignored; on a
            nested level, the earlier level's sizes count only if it had
            ``prop_attn`` too) and the attention bias log(size)
            (:func:`vtseg.functional.proportional_attention_bias`).
    """

    def __init__(self,
                 after_block: int,
                 grid: GridSpec,
                 n_iters: int = 5,
                 temperature: float = 0.02,
                 window_size: int = 5,
                 faithful: bool = False,
                 distance: str = 'raw',
                 temperature_mode: str = 'absolute',
                 keep_outliers: float = 0.0,
                 prop_attn: bool = False,
                 init_cfg=None):
        super().__init__(after_block=after_block, init_cfg=init_cfg)
        owner = f'TokenClustering(after_block={after_block})'
        if isinstance(keep_outliers, bool) or \
                not isinstance(keep_outliers, (int, float)) or \
                not 0 <= keep_outliers < 1:
            raise ValueError(f'{owner}: keep_outliers must be a fraction in '
                             f'[0, 1), got {keep_outliers!r}')
        if after_block is None or isinstance(after_block, bool) or \
                not isinstance(after_block, int):
            raise ValueError(f'{owner}: after_block (cluster_layer) must be '
                             'a block index')
        if isinstance(grid, list):
            grid = tuple(grid)
        _check_grid_spec(grid, owner)
        if not isinstance(window_size, int) or window_size < 1 or \
                window_size % 2 == 0:
            raise ValueError(f'{owner}: window_size must be a positive odd '
                             f'int, got {window_size!r}')
        if not isinstance(n_iters, int) or n_iters < 0:
            raise ValueError(f'{owner}: n_iters must be an int >= 0, got '
                             f'{n_iters!r}')
        if distance not in _DISTANCES:
            raise ValueError(f'{owner}: distance must be one of '
                             f'{_DISTANCES}, got {distance!r}')
        if temperature_mode not in _TEMPERATURE_MODES:
            raise ValueError(f'{owner}: temperature_mode must be one of '
                             f'{_TEMPERATURE_MODES}, got '
                             f'{temperature_mode!r}')
        self.grid = grid
        self.n_iters = n_iters
        self.temperature = float(temperature)
        self.window_size = window_size
        self.faithful = faithful
        self.distance = distance
        self.temperature_mode = temperature_mode
        self.keep_outliers = float(keep_outliers)
        self.prop_attn = bool(prop_attn)

    def extra_repr(self) -> str:
        return (f'after_block={self.after_block}, grid={self.grid}, '
                f'n_iters={self.n_iters}, temperature={self.temperature}, '
                f'window_size={self.window_size}, distance={self.distance}, '
                f'temperature_mode={self.temperature_mode}, '
                f'keep_outliers={self.keep_outliers}, '
                f'prop_attn={self.prop_attn}')

    def num_kept(self, num_tokens: int) -> int:
        """Tokens kept out of a clustering of ``num_tokens`` tokens."""
        return int(round(self.keep_outliers * num_tokens))

    def resolve_grid(self, hw: Tuple[int, int]) -> Tuple[int, int]:
        """(h, w) for a (H, W) token grid; ValueError naming ``grid``."""
        try:
            return resolve_cluster_grid(self.grid, hw, 'grid')
        except ValueError as err:
            raise ValueError(f'TokenClustering(after_block='
                             f'{self.after_block}): {err}') from None

    def forward(self, grid: TokenGrid, block: Optional[int] = None,
                keys: Optional[Tensor] = None) -> TokenGrid:
        """(B, n_prefix + H*W, C) -> (B, n_prefix + h*w, C); H, W is the
        patch grid, or the cluster grid of an earlier clustering."""
        hw = grid.layout
        if hw is None or (grid.restores and not isinstance(
                grid.restores[-1], ExpeditState)):
            owner = grid.restores[-1].owner if grid.restores else 'a stage'
            raise RuntimeError(
                f'TokenClustering(after_block={self.after_block}): the token '
                f'set was changed by {owner} and is no regular grid; only '
                'the patch grid or an Expedit cluster grid can be clustered')
        h, w = self.resolve_grid(hw)
        patches = grid.patches  # (B, N, C)
        scale = None
        if self.distance == 'raw':
            tokens = patches
            if self.temperature_mode == 'relative':
                # distances / scale == distances of tokens / sqrt(scale);
                # the centres are linear in the tokens, so cluster the
                # scaled tokens and scale the centres back
                scale = _feature_scale(patches)
                root = scale.sqrt().to(patches.dtype)[:, None, None]
                tokens = patches / root
            feat_centres, _, labels = cluster_token_sequence(
                tokens, hw, (h, w), self.n_iters, self.temperature,
                self.window_size, self.faithful, with_labels=False)
            feat = tokens
            centres = feat_centres if scale is None else feat_centres * root
        else:
            feat = _distance_features(patches, self.distance)
            if self.temperature_mode == 'relative':
                scale = _feature_scale(feat)
                feat = feat / scale.sqrt().to(feat.dtype)[:, None, None]
            centres, feat_centres, labels = cluster_token_sequence(
                patches, hw, (h, w), self.n_iters, self.temperature,
                self.window_size, self.faithful, metric=feat,
                with_labels=False)
        state = ExpeditState(
            feat_before=feat, feat_after=feat_centres, grid=(h, w),
            scale=scale, after_block=self.after_block, hw=hw,
            window_size=self.window_size, faithful=self.faithful,
            labels=labels,
            owner=f'TokenClustering(after_block={self.after_block})')
        # int() first: hw holds traced tensors when the FLOP counter runs
        num_keep = self.num_kept(int(hw[0]) * int(hw[1]))
        changes = dict(reduced_hw=(h, w))
        if num_keep:
            keep = clustering_outliers(feat, feat_centres,
                                       state.hard_labels, num_keep)
            state.keep = keep
            kept = torch.gather(
                patches, 1, keep[..., None].expand(-1, -1, patches.shape[-1]))
            centres = torch.cat([centres, kept], dim=1)
            clusters = keep.new_full((keep.shape[0], h * w), -1)
            changes = dict(index=torch.cat(
                [clusters, torch.gather(grid.index, 1, keep)], 1))
        if self.prop_attn:
            size = self._sizes(grid, state)
            changes.update(size=size, attn_bias=proportional_attention_bias(
                size, grid.n_prefix))
        x = torch.cat([grid.prefix, centres], dim=1)
        return grid.push(state, x=x, **changes)

    @staticmethod
    def _sizes(grid: TokenGrid, state: ExpeditState) -> Tensor:
        """(B, M + K) patches per token after the clustering: the sizes of
        the tokens in each cluster's hard label, kept tokens their own."""
        patches = grid.patches
        B, N = patches.shape[:2]
        old = grid.size if grid.size is not None else \
            patches.new_ones(B, N, dtype=torch.float32)
        old = old.float()
        members = old
        if state.keep is not None:
            members = old.scatter(1, state.keep, 0.0)
        M = state.grid[0] * state.grid[1]
        size = old.new_zeros(B, M).scatter_add_(1, state.hard_labels, members)
        if state.keep is not None:
            size = torch.cat([size, torch.gather(old, 1, state.keep)], 1)
        return size.clamp(min=1e-4)

    def flops(self, call: str, args: tuple, output,
              mode: str) -> Optional[int]:
        """Multiply-adds of one clustering (whole batch): pooling, then per
        iteration distances, softmax and centre update (docs/methods/
        flops_and_speed.md). ``mode='executed'`` counts only the
        token-cluster pairs inside the locality window, which is what the
        implementation evaluates; the hard labels are left to first use
        (naive unpooling only) and counted in ``'spec'`` mode only."""
        B, _, C = args[0].x.shape
        state = output.restores[-1]
        layout = state.hw  # patch grid, or the earlier cluster grid
        N = layout[0] * layout[1]
        h, w = state.grid
        pairs = None
        if mode == 'executed':
            pairs = int(window_candidates(layout, (h, w),
                                          self.window_size)[1].sum())
        # relative temperature with raw distances clusters rescaled tokens
        # (no second set of centres); normalised distances update both sets
        D = state.feat_before.shape[-1] if self.distance != 'raw' else None
        # kept outliers need the hard labels now; the residuals and the
        # top-k are O(N * D), counted as one multiply-add per entry
        keep = state.keep is not None
        extra = N * state.feat_before.shape[-1] if keep else 0
        return B * (cluster_flops(N, h * w, C, self.n_iters, pairs, D,
                                  hard_labels=mode == 'spec' or keep)
                    + extra)


@MODELS.register_module()
class TokenReconstruction(BaseTokenStage):
    """Rebuild the full token grid from refined cluster tokens.

    Args:
        after_block: rebuild after this block (later blocks see all tokens
            again); None: act as the backbone's output restorer, rebuilding
            every output level taken after clustering, after its norm.
        k: clusters kept per token (ties at the k-th weight kept); k < 0
            keeps all. Must not exceed the number of clusters.
        temperature: inverse temperature on squared distances.
        faithful: raw reference arithmetic (no clamping of negative squared
            distances, no row shift before exp; quirks 6 and 7 of
            docs/methods/expedit.md).
        clamp_negative / subtract_min: override those two individually.
        mode: ``'weighted'`` (the paper's reconstruction) or ``'naive'``
            (copy the cluster named by each token's hard label, the
            reference's ``NaiveUnpooling``).
        defer_to_head: output restorer only (``after_block=None``): return
            each output level as a :class:`ClusteredFeatureMap` (cluster
            tokens plus the reconstruction weights) so that the decode head
            applies its first linear layer to the M clusters and rebuilds
            afterwards. The result is the same up to float rounding (the
            reconstruction is linear in the cluster tokens); the head must
            support it (:class:`~vtseg.models.UpConvHead`).

    Nested clusterings are undone innermost first, each with its own
    clustering-time features.

    Distances use the features the clustering stage stored (its
    ``distance`` and ``temperature_mode``).
    """

    def __init__(self,
                 after_block: Optional[int] = None,
                 k: int = 20,
                 temperature: float = 0.02,
                 faithful: bool = False,
                 clamp_negative: Optional[bool] = None,
                 subtract_min: Optional[bool] = None,
                 mode: str = 'weighted',
                 defer_to_head: bool = False,
                 init_cfg=None):
        super().__init__(after_block=after_block, init_cfg=init_cfg)
        owner = f'TokenReconstruction(after_block={after_block})'
        if defer_to_head and after_block is not None:
            raise ValueError(f'{owner}: defer_to_head=True needs '
                             'after_block=None (the output restorer); '
                             'blocks after a mid-network reconstruction '
                             'need the rebuilt tokens')
        if isinstance(k, bool) or not isinstance(k, int) or k == 0:
            raise ValueError(f'{owner}: k must be a non-zero int (k < 0 '
                             f'keeps all clusters), got {k!r}')
        if mode not in ('weighted', 'naive'):
            raise ValueError(f"{owner}: mode must be 'weighted' or 'naive', "
                             f'got {mode!r}')
        self.k = k
        self.temperature = float(temperature)
        self.faithful = faithful
        self.clamp_negative = clamp_negative
        self.subtract_min = subtract_min
        self.mode = mode
        self.defer_to_head = bool(defer_to_head)

    def extra_repr(self) -> str:
        return (f'after_block={self.after_block}, k={self.k}, '
                f'temperature={self.temperature}, mode={self.mode}, '
                f'defer_to_head={self.defer_to_head}')

    def _levels(self, grid: TokenGrid) -> List[ExpeditState]:
        """The clusterings this stage undoes, innermost first."""
        levels = expedit_levels(grid)
        if not levels:
            where = 'output' if self.after_block is None else \
                f'block {self.after_block}'
            top = grid.restores[-1].owner if grid.restores else 'nothing'
            raise RuntimeError(
                f'TokenReconstruction(after_block={self.after_block}): no '
                f'clustering state at {where} (top of the restore stack: '
                f'{top}); reconstruct_layer must come after cluster_layer '
                'and a TokenClustering stage must be configured')
        return levels

    def _rebuild(self, levels: List[ExpeditState],
                 patches: Tensor) -> Tensor:
        """(B, M, C) cluster tokens -> (B, N, C) tokens of the grid below
        the clusterings, undoing nested ones innermost first."""
        for level in levels:
            patches = self._rebuild_level(level, patches)
        return patches

    def _check_level(self, state: ExpeditState, M: int) -> None:
        h, w = state.grid
        if M != state.num_tokens:
            kept = '' if state.keep is None else \
                f' + {state.keep.shape[1]} kept tokens'
            raise RuntimeError(
                f'TokenReconstruction: got {M} cluster tokens, the '
                f'clustering state has a {h} x {w} grid{kept}')
        M = h * w
        if self.mode == 'weighted' and self.k > M:
            raise ValueError(
                f'TokenReconstruction: k={self.k} is larger than the number '
                f'of clusters M={M} (grid {h} x {w}); lower k or enlarge the '
                'grid')

    def level_weights(self, state: ExpeditState) -> Tuple[Tensor, Tensor]:
        """``(index, weight)``, each (B, N, K), of one level's
        reconstruction (:func:`vtseg.functional.reconstruction_weights`;
        naive unpooling: the hard label with weight 1); kept outliers are
        copied back from their own columns
        (:func:`vtseg.functional.keep_unclustered`)."""
        self._check_level(state, state.num_tokens)
        if self.mode == 'naive':
            index = state.hard_labels[..., None]
            weights = index, torch.ones(index.shape, dtype=torch.float32,
                                        device=index.device)
        else:
            weights = reconstruction_weights(
                state.feat_before, state.feat_after, k=self.k,
                temperature=self.temperature, faithful=self.faithful,
                clamp_negative=self.clamp_negative,
                subtract_min=self.subtract_min)
        if state.keep is None:
            return weights
        return keep_unclustered(*weights, state.keep,
                                state.grid[0] * state.grid[1])

    def _rebuild_level(self, state: ExpeditState, patches: Tensor) -> Tensor:
        """(B, M, C) cluster tokens -> (B, N, C) tokens of the grid that
        this clustering clustered."""
        self._check_level(state, patches.shape[1])
        if state.keep is not None:
            index, weight = self.level_weights(state)
            return apply_reconstruction(patches, index,
                                        weight.to(patches.dtype))
        if self.mode == 'naive':
            idx = state.hard_labels[..., None].expand(-1, -1,
                                                      patches.shape[-1])
            return torch.gather(patches, 1, idx)
        return reconstruct_tokens(
            patches, state.feat_before, state.feat_after, k=self.k,
            temperature=self.temperature, faithful=self.faithful,
            clamp_negative=self.clamp_negative,
            subtract_min=self.subtract_min)

    def forward(self, grid: TokenGrid, block: Optional[int] = None,
                keys: Optional[Tensor] = None) -> TokenGrid:
        """(B, n_prefix + h*w, C) -> (B, n_prefix + H*W, C)."""
        levels = self._levels(grid)
        first = levels[-1]
        if first.after_block is not None and self.after_block is not None \
                and (first.after_block < 0) == (self.after_block < 0) \
                and first.after_block >= self.after_block:
            raise ValueError(
                f'cluster_layer ({first.after_block}) must be before '
                f'reconstruct_layer ({self.after_block})')
        return self._pop(grid, grid.x, levels)

    def _pop(self, grid: TokenGrid, tokens: Tensor,
             levels: List[ExpeditState]) -> TokenGrid:
        n = grid.n_prefix
        full = self._rebuild(levels, tokens[:, n:])
        x = torch.cat([tokens[:, :n], full], dim=1)
        for _ in levels[:-1]:  # intermediate layouts are never materialised
            grid = grid.replace(restores=grid.restores[:-1])
        return grid.pop(x)

    def restores(self, state: RestoreState) -> bool:
        """Output restorer for Expedit clusterings."""
        return isinstance(state, ExpeditState)

    def restore(self, grid: TokenGrid, tokens: Tensor):
        """Output restorer: (B, n_prefix + h*w, C) normalised tokens ->
        (popped grid, (B, n_prefix + H*W, C) tokens); with
        ``defer_to_head`` the tokens are a :class:`ClusteredFeatureMap` of
        the patch tokens instead (every clustering on top of the stack is
        undone by the decode head)."""
        levels = self._levels(grid)
        if self.defer_to_head:
            n = grid.n_prefix
            self._check_level(levels[0], tokens.shape[1] - n)
            weights = [self.level_weights(s) for s in levels]
            B, _, C = tokens.shape
            N = levels[-1].hw[0] * levels[-1].hw[1]
            # bookkeeping only: the head rebuilds the tokens, so the popped
            # grid holds a zero-memory placeholder of the right shape
            placeholder = tokens.new_zeros(()).expand(B, n + N, C)
            grid = grid.replace(restores=grid.restores[:1 - len(levels)]
                                if len(levels) > 1 else grid.restores)
            return grid.pop(placeholder), ClusteredFeatureMap(
                tokens[:, n:], weights, levels[-1].hw)
        grid = self._pop(grid, tokens, levels)
        return grid, grid.x

    def flops(self, call: str, args: tuple, output,
              mode: str) -> Optional[int]:
        """Multiply-adds of one reconstruction (whole batch), summed over
        the nested levels: N*M*D distances, N*M exp / top-k, and the
        product: N*M*C in the dense formula (``'spec'``), N*k*C on the kept
        entries as executed. Naive unpooling is a gather (0). With
        ``defer_to_head`` only the weights are counted here: the head's
        products are traced operators."""
        if self.mode == 'naive':
            return 0
        grid = args[0]
        tokens = args[1] if call == 'restore' else grid.x
        B, _, C = tokens.shape
        deferred = call == 'restore' and isinstance(output[1],
                                                    ClusteredFeatureMap)
        total = 0
        for state in expedit_levels(grid):
            N = state.hw[0] * state.hw[1]
            M = state.grid[0] * state.grid[1]
            D = state.feat_before.shape[-1]
            if deferred:
                total += N * M * D + N * M
            elif D == C:
                total += reconstruct_flops(N, M, C, self.k,
                                           dense_product=mode == 'spec')
            else:
                kk = M if (mode == 'spec' or self.k < 0) else min(self.k, M)
                total += N * M * D + N * M + N * kk * C
        return B * total


def expedit_token_stages(cluster_layer: Union[int, Sequence[int]],
                         grid: Union[GridSpec, Sequence[GridSpec]],
                         reconstruct_layer: Optional[int] = None,
                         k: int = 20,
                         cluster_temperature: float = 0.02,
                         reconstruct_temperature: float = 0.02,
                         window_size: int = 5,
                         n_iters: int = 5,
                         restore: str = 'backbone',
                         faithful: bool = False,
                         depth: Optional[int] = None,
                         **cluster_kwargs) -> List[dict]:
    """The ``token_stages`` list for one Expedit setting, checked as a whole.

    Args:
        cluster_layer: cluster after this block; a list of increasing blocks
            clusters again after each (nested clustering, a vtseg extension;
            the paper clusters once).
        grid: cluster grid spec (see :class:`TokenClustering`); with a list
            of cluster layers, a list of specs of the same length, each
            relative to the grid of the level before.
        reconstruct_layer: rebuild after this block; None rebuilds at the
            backbone outputs (``restore='backbone'``).
        k, cluster_temperature, reconstruct_temperature, window_size,
        n_iters, faithful: as in the two stages (shared by all levels).
        restore: ``'backbone'`` (rebuild), ``'head'`` (rebuild inside the
            decode head, after its first linear layer, see
            ``TokenReconstruction(defer_to_head=True)``; same outputs, less
            compute) or ``'none'`` (outputs stay on the (h, w) cluster grid;
            Expedit-Segmenter as shipped).
        depth: number of blocks, to check negative layer indices.
        cluster_kwargs: further :class:`TokenClustering` arguments
            (``distance``, ``temperature_mode``).

    Returns:
        list of stage config dicts for ``ViT(token_stages=...)``.
    """
    if restore not in ('backbone', 'head', 'none'):
        raise ValueError(f"restore must be 'backbone', 'head' or 'none', "
                         f'got {restore!r}')
    if restore != 'backbone' and reconstruct_layer is not None:
        raise ValueError(f'restore={restore!r} cannot be combined with '
                         'reconstruct_layer')
    if restore == 'none' and cluster_kwargs.get('keep_outliers'):
        raise ValueError("restore='none' cannot be combined with "
                         'keep_outliers: the kept tokens form no grid for '
                         'the outputs')
    nested = isinstance(cluster_layer, (list, tuple))
    layers = list(cluster_layer) if nested else [cluster_layer]
    if nested:
        if not layers:
            raise ValueError('cluster_layer: empty list')
        if not isinstance(grid, (list, tuple)) or len(grid) != len(layers):
            raise ValueError(
                f'cluster_layer={list(layers)} clusters {len(layers)} times: '
                f'grid must be a list of {len(layers)} grid specs, got '
                f'{grid!r}')
        grids = list(grid)
    else:
        grids = [grid]
    grids = [tuple(g) if isinstance(g, list) else g for g in grids]

    def resolved(i, key):
        if depth is None:
            return i
        j = i + depth if i < 0 else i
        if not 0 <= j < depth:
            raise ValueError(f'{key}={i} is out of range for depth {depth}')
        return j

    def before(a, b):  # a < b, or not comparable (signs differ, no depth)
        return not (depth is not None or (a < 0) == (b < 0)) or a < b

    res = [resolved(i, 'cluster_layer') for i in layers]
    for a, b in zip(res, res[1:]):
        if not before(a, b):
            raise ValueError(f'cluster_layer={list(layers)} must be '
                             'increasing (each clustering after the last)')
    if reconstruct_layer is not None:
        rl = resolved(reconstruct_layer, 'reconstruct_layer')
        if not before(res[-1], rl):
            raise ValueError(f'cluster_layer ({layers[-1]}) must be '
                             f'before reconstruct_layer '
                             f'({reconstruct_layer})')
    for g in grids:
        _check_grid_spec(g, 'expedit_token_stages')
        if restore != 'none' and not isinstance(g, float) and k > 0:
            h, w = resolve_cluster_grid(g, (1 << 30, 1 << 30))
            if k > h * w:
                raise ValueError(f'k={k} is larger than the number of '
                                 f'clusters {h * w} of grid {g}')
    stages = [
        dict(type='TokenClustering', after_block=layer, grid=g,
             n_iters=n_iters, temperature=cluster_temperature,
             window_size=window_size, faithful=faithful, **cluster_kwargs)
        for layer, g in zip(layers, grids)
    ]
    if restore != 'none':
        stages.append(
            dict(type='TokenReconstruction', after_block=reconstruct_layer,
                 k=k, temperature=reconstruct_temperature,
                 faithful=faithful))
        if restore == 'head':
            stages[-1]['defer_to_head'] = True
    return stages
