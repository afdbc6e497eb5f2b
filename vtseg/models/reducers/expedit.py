"""Expedit token stages: clustering after one block, reconstruction after a
later block or at the backbone outputs (methods.md section 2).

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
  mean), so one temperature serves features of any magnitude.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from vtseg.functional.expedit import (cluster_flops,
                                      cluster_token_sequence,
                                      reconstruct_flops, reconstruct_tokens,
                                      resolve_cluster_grid,
                                      window_candidates)
from vtseg.registry import MODELS
from vtseg.utils.flops import register_flop_formula
from ..utils import TokenGrid
from .base import BaseTokenStage

__all__ = [
    'ExpeditState', 'TokenClustering', 'TokenReconstruction',
    'expedit_token_stages'
]

_DISTANCES = ('raw', 'layernorm', 'l2')
_TEMPERATURE_MODES = ('absolute', 'relative')

GridSpec = Union[int, float, Sequence[int]]


@dataclass
class ExpeditState:
    """What the clustering step leaves in ``TokenGrid.restore``.

    Attributes:
        feat_before: (B, N, D) distance features of the patch tokens at
            clustering time (the raw tokens with ``distance='raw'``).
        feat_after: (B, M, D) distance features of the centres.
        hard_labels: (B, N) int64 nearest centre of each token.
        grid: (h, w) cluster grid, M = h * w.
        scale: (B,) feature scale per image (``temperature_mode=
            'relative'``), else None.
        after_block: the clustering stage's ``after_block``.
    """
    feat_before: Tensor
    feat_after: Tensor
    hard_labels: Tensor
    grid: Tuple[int, int]
    scale: Optional[Tensor] = None
    after_block: Optional[int] = None


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
    state goes to ``grid.restore`` (an :class:`ExpeditState`) and
    ``grid.reduced_hw`` is set to (h, w).

    Args:
        after_block: block after which to cluster (0-based; negative from the
            end). The paper's "location" / alpha - 1.
        grid: (h, w); a perfect-square int (the reference's ``num_spixels``,
            faithful); or a float scale of the token grid (e.g. 0.7 maps a
            40 x 40 grid to 28 x 28).
        n_iters: soft k-means iterations.
        temperature: inverse temperature t in softmax(-t * distance).
        window_size: odd locality window, in cells.
        faithful: hard labels by unmasked argmin (reference quirk 9).
        distance: ``'raw'`` (paper), ``'layernorm'`` or ``'l2'`` (see module
            docstring).
        temperature_mode: ``'absolute'`` (paper) or ``'relative'``.
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
                 init_cfg=None):
        super().__init__(after_block=after_block, init_cfg=init_cfg)
        owner = f'TokenClustering(after_block={after_block})'
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

    def extra_repr(self) -> str:
        return (f'after_block={self.after_block}, grid={self.grid}, '
                f'n_iters={self.n_iters}, temperature={self.temperature}, '
                f'window_size={self.window_size}, distance={self.distance}, '
                f'temperature_mode={self.temperature_mode}')

    def resolve_grid(self, hw: Tuple[int, int]) -> Tuple[int, int]:
        """(h, w) for a (H, W) token grid; ValueError naming ``grid``."""
        try:
            return resolve_cluster_grid(self.grid, hw, 'grid')
        except ValueError as err:
            raise ValueError(f'TokenClustering(after_block='
                             f'{self.after_block}): {err}') from None

    def forward(self, grid: TokenGrid) -> TokenGrid:
        """(B, n_prefix + H*W, C) -> (B, n_prefix + h*w, C)."""
        if grid.is_reduced or grid.restore is not None:
            raise RuntimeError(
                f'TokenClustering(after_block={self.after_block}): the token '
                'set is already reduced (two reducers, or clustering after '
                'another clustering without reconstruction in between)')
        hw = grid.hw
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
                self.window_size, self.faithful)
            feat = tokens
            centres = feat_centres if scale is None else feat_centres * root
        else:
            feat = _distance_features(patches, self.distance)
            if self.temperature_mode == 'relative':
                scale = _feature_scale(feat)
                feat = feat / scale.sqrt().to(feat.dtype)[:, None, None]
            centres, feat_centres, labels = cluster_token_sequence(
                patches, hw, (h, w), self.n_iters, self.temperature,
                self.window_size, self.faithful, metric=feat)
        state = ExpeditState(
            feat_before=feat, feat_after=feat_centres, hard_labels=labels,
            grid=(h, w), scale=scale, after_block=self.after_block)
        x = torch.cat([grid.prefix, centres], dim=1)
        return grid.replace(x=x, reduced_hw=(h, w), restore=state)


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
            distances, no row shift before exp; quirks 6 and 7).
        clamp_negative / subtract_min: override those two individually.
        mode: ``'weighted'`` (the paper's reconstruction) or ``'naive'``
            (copy the cluster named by each token's hard label, the
            reference's ``NaiveUnpooling``).

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
                 init_cfg=None):
        super().__init__(after_block=after_block, init_cfg=init_cfg)
        owner = f'TokenReconstruction(after_block={after_block})'
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

    def extra_repr(self) -> str:
        return (f'after_block={self.after_block}, k={self.k}, '
                f'temperature={self.temperature}, mode={self.mode}')

    def _state(self, grid: TokenGrid) -> ExpeditState:
        state = grid.restore
        if not isinstance(state, ExpeditState):
            where = 'output' if self.after_block is None else \
                f'block {self.after_block}'
            raise RuntimeError(
                f'TokenReconstruction(after_block={self.after_block}): no '
                f'clustering state at {where} (grid.restore is '
                f'{type(state).__name__}); reconstruct_layer must come after '
                'cluster_layer and a TokenClustering stage must be '
                'configured')
        return state

    def _rebuild(self, state: ExpeditState, patches: Tensor) -> Tensor:
        """(B, M, C) cluster tokens -> (B, N, C)."""
        M = patches.shape[1]
        h, w = state.grid
        if M != h * w:
            raise RuntimeError(
                f'TokenReconstruction: got {M} cluster tokens, the '
                f'clustering state has a {h} x {w} grid')
        if self.mode == 'naive':
            idx = state.hard_labels[..., None].expand(-1, -1,
                                                      patches.shape[-1])
            return torch.gather(patches, 1, idx)
        if self.k > M:
            raise ValueError(
                f'TokenReconstruction: k={self.k} is larger than the number '
                f'of clusters M={M} (grid {h} x {w}); lower k or enlarge the '
                'grid')
        return reconstruct_tokens(
            patches, state.feat_before, state.feat_after, k=self.k,
            temperature=self.temperature, faithful=self.faithful,
            clamp_negative=self.clamp_negative,
            subtract_min=self.subtract_min)

    def forward(self, grid: TokenGrid) -> TokenGrid:
        """(B, n_prefix + h*w, C) -> (B, n_prefix + H*W, C)."""
        state = self._state(grid)
        if state.after_block is not None and self.after_block is not None \
                and (state.after_block < 0) == (self.after_block < 0) \
                and state.after_block >= self.after_block:
            raise ValueError(
                f'cluster_layer ({state.after_block}) must be before '
                f'reconstruct_layer ({self.after_block})')
        full = self._rebuild(state, grid.patches)
        x = torch.cat([grid.prefix, full], dim=1)
        return grid.replace(x=x, reduced_hw=None, restore=None)

    def restore(self, grid: TokenGrid, tokens: Tensor) -> Tensor:
        """Output restorer: (B, n_prefix + h*w, C) normalised tokens ->
        (B, n_prefix + H*W, C)."""
        state = self._state(grid)
        n = grid.n_prefix
        full = self._rebuild(state, tokens[:, n:])
        return torch.cat([tokens[:, :n], full], dim=1)


def expedit_token_stages(cluster_layer: int,
                         grid: GridSpec,
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
        cluster_layer: cluster after this block.
        grid: cluster grid spec (see :class:`TokenClustering`).
        reconstruct_layer: rebuild after this block; None rebuilds at the
            backbone outputs (``restore='backbone'``).
        k, cluster_temperature, reconstruct_temperature, window_size,
        n_iters, faithful: as in the two stages.
        restore: ``'backbone'`` (rebuild) or ``'none'`` (outputs stay on the
            (h, w) cluster grid; Expedit-Segmenter as shipped).
        depth: number of blocks, to check negative layer indices.
        cluster_kwargs: further :class:`TokenClustering` arguments
            (``distance``, ``temperature_mode``).

    Returns:
        list of stage config dicts for ``ViT(token_stages=...)``.
    """
    if restore not in ('backbone', 'none'):
        raise ValueError(f"restore must be 'backbone' or 'none', got "
                         f'{restore!r}')
    if restore == 'none' and reconstruct_layer is not None:
        raise ValueError("restore='none' cannot be combined with "
                         'reconstruct_layer')

    def resolved(i, key):
        if depth is None:
            return i
        j = i + depth if i < 0 else i
        if not 0 <= j < depth:
            raise ValueError(f'{key}={i} is out of range for depth {depth}')
        return j

    cl = resolved(cluster_layer, 'cluster_layer')
    if reconstruct_layer is not None:
        rl = resolved(reconstruct_layer, 'reconstruct_layer')
        if (depth is not None or (cl < 0) == (rl < 0)) and cl >= rl:
            raise ValueError(f'cluster_layer ({cluster_layer}) must be '
                             f'before reconstruct_layer '
                             f'({reconstruct_layer})')
    if isinstance(grid, list):
        grid = tuple(grid)
    _check_grid_spec(grid, 'expedit_token_stages')
    if restore == 'backbone' and not isinstance(grid, float) and k > 0:
        h, w = resolve_cluster_grid(grid, (1 << 30, 1 << 30))
        if k > h * w:
            raise ValueError(f'k={k} is larger than the number of clusters '
                             f'{h * w} of grid {grid}')
    stages = [
        dict(type='TokenClustering', after_block=cluster_layer, grid=grid,
             n_iters=n_iters, temperature=cluster_temperature,
             window_size=window_size, faithful=faithful, **cluster_kwargs)
    ]
    if restore == 'backbone':
        stages.append(
            dict(type='TokenReconstruction', after_block=reconstruct_layer,
                 k=k, temperature=reconstruct_temperature,
                 faithful=faithful))
    return stages


# ------------------------------------------------------------------ FLOPs
@register_flop_formula(TokenClustering)
def _clustering_flops(stage: TokenClustering, call: str, args, out,
                      mode: str) -> int:
    """methods.md 1.5 for one :class:`TokenClustering` call (whole batch).
    ``mode='executed'`` counts only the token-cluster pairs inside the
    locality window, which is what the implementation evaluates."""
    grid_in = args[0]
    B, _, C = grid_in.x.shape
    N = grid_in.num_patches
    h, w = out.reduced_hw
    pairs = None
    if mode == 'executed':
        pairs = int(window_candidates(grid_in.hw, (h, w),
                                      stage.window_size)[1].sum())
    # relative temperature with raw distances clusters rescaled tokens (no
    # second set of centres); normalised distances update both sets
    separate = stage.distance != 'raw'
    D = out.restore.feat_before.shape[-1] if separate else None
    return B * cluster_flops(N, h * w, C, stage.n_iters, pairs, D)


@register_flop_formula(TokenReconstruction)
def _reconstruction_flops(stage: TokenReconstruction, call: str, args, out,
                          mode: str) -> int:
    """methods.md 1.5 for one reconstruction (whole batch): N*M*D
    distances, N*M exp / top-k, and the product: N*M*C in the spec's dense
    formula, N*k*C on the kept entries as executed. Naive unpooling is a
    gather (0)."""
    grid = args[0]
    if stage.mode == 'naive':
        return 0
    state = grid.restore
    tokens = args[1] if call == 'restore' else grid.x
    B, _, C = tokens.shape
    N = grid.num_patches
    h, w = state.grid
    D = state.feat_before.shape[-1]
    M = h * w
    if D == C:
        return B * reconstruct_flops(N, M, C, stage.k,
                                     dense_product=mode == 'spec')
    kk = M if (mode == 'spec' or stage.k < 0) else min(stage.k, M)
    return B * (N * M * D + N * M + N * kk * C)
