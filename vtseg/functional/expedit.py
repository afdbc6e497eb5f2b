"""Expedit: token clustering and reconstruction (hourglass ViT).

Plain functions on tensors; the registry stages in
:mod:`vtseg.models.reducers.expedit` are thin wrappers around them.
Method notes: ``docs/methods/expedit.md`` (Expedit) and
``docs/methods/flops_and_speed.md`` (FLOPs).

Both operators run in fp32, also inside autocast, and cast their outputs back
to the input dtype: the locality penalty 1e16 is outside the fp16 range
(docs/methods/expedit.md#quirks, quirk 8).

Implementation note. Each token may only join the clusters of the
``window_size x window_size`` cells around its initial cell. The reference
evaluates the full (M, N) distance matrix and adds 1e16 to forbidden pairs,
which costs M*N*C per pass, more than the clustering saves at small grids. We
evaluate only the allowed pairs (a sampled dense-dense product for the
distances and a weighted ``embedding_bag`` for the centre update), so the cost
is N*K*C with K <= window_size**2. With any temperature t >= 1e-12 the two are
the same to float precision: a forbidden pair gets weight exp(-1e16 * t)
relative to the allowed ones, which is exactly 0 in fp32. For smaller
temperatures (t = 0 gives uniform weights over *all* clusters in the
reference) and on devices without sparse kernels the dense reference
formulation is used.
"""
import functools
import math
import warnings
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'cluster_tokens', 'cluster_tokens_with_metric', 'cluster_token_sequence',
    'cluster_hard_labels', 'clustering_outliers', 'keep_unclustered',
    'reconstruct_tokens', 'reconstruction_weights', 'apply_reconstruction',
    'resolve_cluster_grid', 'window_candidates', 'cluster_flops',
    'reconstruct_flops', 'LOCALITY_PENALTY'
]

#: Distance added to forbidden (token, cluster) pairs, as in the reference.
#: Finite on purpose (docs/methods/expedit.md#clustering, step 3).
LOCALITY_PENALTY = 1e16

# Below this temperature the 1e16 penalty no longer zeroes forbidden pairs in
# fp32, so only the dense formulation reproduces the reference.
_SPARSE_MIN_TEMPERATURE = 1e-12


def resolve_cluster_grid(grid: Union[int, float, Sequence[int]],
                         hw: Tuple[int, int],
                         key: str = 'grid') -> Tuple[int, int]:
    """Turn a cluster-grid spec into (h, w) for a (H, W) token grid.

    Args:
        grid: ``(h, w)``; a perfect-square int M (the reference's
            ``num_spixels``, h = w = sqrt(M)); or a float scale s in (0, 1]
            (h = round(s * H), w = round(s * W), at least 1).
        hw: (H, W) token grid.
        key: config key named in error messages.

    Returns:
        (h, w) with 1 <= h <= H and 1 <= w <= W.
    """
    H, W = int(hw[0]), int(hw[1])
    if isinstance(grid, bool):
        raise TypeError(f'{key} must be (h, w), a perfect-square int or a '
                        f'float scale, got {grid!r}')
    if isinstance(grid, float):
        if not 0 < grid <= 1:
            raise ValueError(f'{key}={grid!r}: a scale factor must be in '
                             '(0, 1]')
        h, w = max(1, round(grid * H)), max(1, round(grid * W))
    elif isinstance(grid, int):
        side = math.isqrt(grid) if grid > 0 else 0
        if side * side != grid or grid <= 0:
            raise ValueError(f'{key}={grid}: an int cluster count must be a '
                             'positive perfect square (give (h, w) for other '
                             'grids)')
        h = w = side
    elif isinstance(grid, Sequence) and len(grid) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in grid):
        h, w = int(grid[0]), int(grid[1])
        if h <= 0 or w <= 0:
            raise ValueError(f'{key}={tuple(grid)}: sides must be positive')
    else:
        raise TypeError(f'{key} must be (h, w), a perfect-square int or a '
                        f'float scale, got {grid!r}')
    if h > H or w > W:
        raise ValueError(f'{key}: cluster grid {(h, w)} is larger than the '
                         f'token grid {(H, W)}')
    return h, w


def _check_window(window_size: int) -> int:
    if not isinstance(window_size, int) or isinstance(window_size, bool) \
            or window_size < 1 or window_size % 2 == 0:
        raise ValueError(f'window_size must be a positive odd int, got '
                         f'{window_size!r}')
    return window_size // 2


def _legacy_nearest(out_size: int, in_size: int, device) -> Tensor:
    """Cell index of each of ``out_size`` positions when ``in_size`` cells
    are upsampled with PyTorch's legacy ``nearest`` rule, (out_size,) int64.

    Uses ``F.interpolate`` itself so that the float rounding of the rule is
    reproduced exactly (docs/methods/expedit.md#clustering, step 2)."""
    idx = torch.arange(in_size, device=device, dtype=torch.float32)
    up = F.interpolate(idx.view(1, 1, in_size), size=out_size, mode='nearest')
    return up.view(out_size).long()


def window_candidates(hw: Tuple[int, int], grid: Tuple[int, int],
                      window_size: int,
                      device=None) -> Tuple[Tensor, Tensor]:
    """Clusters each token may join under the locality constraint.

    Token t (row-major in the (H, W) grid) has the initial cell (i, j) given
    by the legacy-nearest upsampling of the (h, w) index map; it may join
    cluster (a, b) iff |a - i| <= r and |b - j| <= r, r = window_size // 2.

    Args:
        hw: (H, W) token grid.
        grid: (h, w) cluster grid.
        window_size: odd window side in cells.

    Returns:
        ``(cand, valid)``: both (N, K), K = kr * kc with
        kr = 2 * min(r, h - 1) + 1 (kc likewise); ``cand`` int64 cluster
        indices in ascending order along K (0 where invalid), ``valid`` bool.
    """
    r = _check_window(window_size)
    H, W = hw
    h, w = grid
    rows = _legacy_nearest(H, h, device)
    cols = _legacy_nearest(W, w, device)
    rr, rc = min(r, h - 1), min(r, w - 1)
    cand_r = rows[:, None] + torch.arange(-rr, rr + 1, device=device)
    cand_c = cols[:, None] + torch.arange(-rc, rc + 1, device=device)
    valid_r = (cand_r >= 0) & (cand_r < h)
    valid_c = (cand_c >= 0) & (cand_c < w)
    cand = cand_r[:, None, :, None] * w + cand_c[None, :, None, :]
    valid = valid_r[:, None, :, None] & valid_c[None, :, None, :]
    N = H * W
    cand = cand.reshape(N, -1)
    valid = valid.reshape(N, -1)
    return torch.where(valid, cand, torch.zeros_like(cand)), valid


def _compute_dtype(t: Tensor) -> torch.dtype:
    """fp32 for fp16 / bf16 / fp32 inputs; fp64 stays fp64."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _pairwise_sqdist(a: Tensor, b: Tensor) -> Tensor:
    """||a_i||^2 + ||b_j||^2 - 2 <a_i, b_j>, expanded as the reference does.

    (B, P, C), (B, Q, C) -> (B, P, Q)."""
    norms = (a * a).sum(-1)[:, :, None] + (b * b).sum(-1)[:, None, :]
    return torch.baddbmm(norms, a, b.transpose(1, 2), alpha=-2.0)


def _use_sparse(device: torch.device, temperature: float) -> bool:
    return device.type in ('cpu', 'cuda') and \
        temperature >= _SPARSE_MIN_TEMPERATURE


class _WindowPattern:
    """Allowed (token, cluster) pairs of one clustering call, in the layouts
    the sparse kernels need (shared by all images of the batch)."""

    def __init__(self, cand: Tensor, valid: Tensor, B: int, M: int,
                 dtype: torch.dtype):
        N, K = cand.shape
        device = cand.device
        self.B, self.N, self.K, self.M = B, N, K, M
        self.cand, self.valid = cand, valid
        self.flat_valid = valid.reshape(-1).nonzero().squeeze(1)  # (E,)
        self.token = torch.div(self.flat_valid, K, rounding_mode='floor')
        self.cluster = cand.reshape(-1)[self.flat_valid]
        E = self.flat_valid.numel()
        self.E = E
        counts = valid.sum(1)
        # Block-diagonal CSR over the batch: rows b*N + t, cols b*M + m.
        crow = torch.zeros(B * N + 1, dtype=torch.int64, device=device)
        crow[1:] = torch.cumsum(counts.repeat(B), 0)
        shift = torch.arange(B, device=device)[:, None]
        col = (self.cluster[None] + shift * M).reshape(-1)
        with warnings.catch_warnings():  # "CSR support is in beta state"
            warnings.simplefilter('ignore', UserWarning)
            self.csr = torch.sparse_csr_tensor(
                crow, col, torch.ones(B * E, device=device, dtype=dtype),
                (B * N, B * M), check_invariants=False)
        # Entries grouped by cluster, for the centre update as bags.
        order = torch.argsort(self.cluster, stable=True)
        self.order = order
        bag_tokens = self.token[order]
        self.bag_input = (bag_tokens[None] + shift * N).reshape(-1)
        sizes = torch.bincount(self.cluster, minlength=M)
        starts = torch.cumsum(sizes, 0) - sizes
        self.bag_offsets = (starts[None] + shift * E).reshape(-1)

    def logits(self, tok_aug: Tensor, ctr: Tensor,
               temperature: float) -> Tensor:
        """-temperature * (||x_t - c_m||^2 - ||x_t||^2) of the allowed
        pairs, (B, E), no gradient.

        ``tok_aug`` is (B, N, D + 16) (:func:`_with_ones`), so
        that one sampled product with the centres augmented as
        ``[2t c_m, -t ||c_m||^2]`` gives the logits. The per-token term
        ``||x_t||^2`` is constant over a token's clusters: the softmax over
        clusters and the arg-max are the same without it."""
        B, N, D1 = tok_aug.shape
        t = float(temperature)
        ctr_aug = ctr.new_zeros(ctr.shape[:-1] + (D1, ))
        D = ctr.shape[-1]
        torch.mul(ctr, 2 * t, out=ctr_aug[..., :D])
        ctr_aug[..., D] = (ctr * ctr).sum(-1) * -t
        vals = torch.sparse.sampled_addmm(
            self.csr, tok_aug.reshape(B * N, D1),
            ctr_aug.reshape(B * self.M, D1).transpose(0, 1),
            beta=0.0).values()
        return vals.view(B, self.E)

    def to_padded(self, vals: Tensor, fill: float) -> Tensor:
        """(B, E) -> (B, N, K) with ``fill`` at forbidden slots."""
        out = vals.new_full((self.B, self.N * self.K), fill)
        out[:, self.flat_valid] = vals
        return out.view(self.B, self.N, self.K)

    def from_padded(self, vals: Tensor) -> Tensor:
        """(B, N, K) -> (B, E)."""
        return vals.reshape(self.B, -1)[:, self.flat_valid]

    def weighted_mean(self, weights: Tensor, tok_aug: Tensor) -> Tensor:
        """sum_t A_tm x_t / max(sum_t A_tm, 1e-16): (B, E), (B, N, C + 16)
        tokens from :func:`_with_ones` (the ones column yields the
        denominator in the same pass) -> (B, M, C); differentiable w.r.t.
        ``tok_aug``."""
        B, N, C1 = tok_aug.shape
        per_sample = weights[:, self.order].reshape(-1)
        out = F.embedding_bag(self.bag_input, tok_aug.reshape(B * N, C1),
                              self.bag_offsets, mode='sum',
                              per_sample_weights=per_sample)
        out = out.view(B, self.M, C1)
        C = C1 - _AUG
        return out[..., :C] / out[..., C:C + 1].clamp(min=1e-16)

    def labels(self, mtok_aug: Tensor, mctr: Tensor) -> Tensor:
        """(B, N) int64 nearest allowed centre (lowest index on ties)."""
        score = self.to_padded(self.logits(mtok_aug, mctr, 1.0),
                               float('-inf'))
        slot = score.argmax(-1)  # first maximum = lowest cluster index
        return torch.gather(self.cand.expand(self.B, -1, -1), 2,
                            slot[..., None]).squeeze(-1)


# Width of the block holding the extra column: the sampled product and the
# embedding bag run ~20% slower on CPU when the row length is not a multiple
# of 16 floats (measured at 384 + 1), so the column is padded with zeros.
_AUG = 16


def _with_ones(*parts: Tensor) -> Tensor:
    """(B, N, C_i) tensors -> (B, N, sum C_i + 16): a column of ones (at
    index sum C_i) and 15 zero columns."""
    extra = parts[0].new_zeros(parts[0].shape[:-1] + (_AUG, ))
    extra[..., 0] = 1
    return torch.cat(list(parts) + [extra], -1)


def cluster_tokens_with_metric(
        x: Tensor,
        metric: Optional[Tensor],
        grid: Tuple[int, int],
        n_iters: int = 5,
        temperature: float = 0.02,
        window_size: int = 5,
        faithful: bool = False) -> Tuple[Tensor, Tensor, Tensor]:
    """Expedit clustering where assignments come from ``metric`` features.

    The soft assignment of every iteration is computed from squared
    distances between ``metric`` tokens and ``metric`` centres; both the
    ``x`` centres and the ``metric`` centres are then updated with the same
    (detached) weights. With ``metric=None`` (or ``metric is x``) this is
    exactly :func:`cluster_tokens`.

    Args:
        x: (B, C, H, W) patch tokens to average.
        metric: (B, D, H, W) features that define distances, or None.
        grid: (h, w) cluster grid, h <= H, w <= W.
        n_iters: soft k-means iterations (>= 0).
        temperature: inverse temperature t in softmax(-t * distance).
        window_size: odd locality window in cells.
        faithful: hard labels by unmasked argmin (reference) instead of the
            argmin over the allowed clusters
            (docs/methods/expedit.md#quirks, quirk 9).

    Returns:
        ``(centers, metric_centers, hard_labels)``: (B, M, C), (B, M, D),
        (B, H*W) int64, M = h * w, row-major grid order, in the dtype of
        ``x`` / ``metric``.
    """
    if x.dim() != 4:
        raise ValueError(f'x must be (B, C, H, W), got shape '
                         f'{tuple(x.shape)}')
    B, C, H, W = x.shape
    same = metric is None or metric is x
    if not same and (metric.dim() != 4 or metric.shape[0] != B
                     or metric.shape[2:] != x.shape[2:]):
        raise ValueError(f'metric must be (B, D, H, W) with B, H, W of x '
                         f'{tuple(x.shape)}, got {tuple(metric.shape)}')
    tok = x.flatten(2).transpose(1, 2)
    mtok = None if same else metric.flatten(2).transpose(1, 2)
    return cluster_token_sequence(tok, (H, W), grid, n_iters, temperature,
                                  window_size, faithful, mtok)


def cluster_token_sequence(
        tokens: Tensor,
        hw: Tuple[int, int],
        grid: Tuple[int, int],
        n_iters: int = 5,
        temperature: float = 0.02,
        window_size: int = 5,
        faithful: bool = False,
        metric: Optional[Tensor] = None,
        with_labels: bool = True) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """:func:`cluster_tokens_with_metric` on (B, N, C) token sequences in
    row-major (H, W) order (the layout inside the backbone; avoids two
    transposed copies).

    Args:
        tokens: (B, H*W, C); ``metric``: (B, H*W, D) or None.
        hw: (H, W). Other arguments as :func:`cluster_tokens`.
        with_labels: False skips the hard labels (returned as None; the
            weighted reconstruction does not need them, and
            :func:`cluster_hard_labels` gives them later from the metric
            tokens and centres).

    Returns:
        ``(centers, metric_centers, hard_labels)`` as
        :func:`cluster_tokens_with_metric`.
    """
    B, N, C = tokens.shape
    H, W = int(hw[0]), int(hw[1])
    if N != H * W:
        raise ValueError(f'{N} tokens cannot form a {H} x {W} grid')
    h, w = resolve_cluster_grid(tuple(grid), (H, W), 'grid')
    if n_iters < 0:
        raise ValueError(f'n_iters must be >= 0, got {n_iters}')
    _check_window(window_size)
    M = h * w
    same = metric is None or metric is tokens
    out_dtype = tokens.dtype
    metric_dtype = out_dtype if same else metric.dtype
    with torch.autocast(device_type=tokens.device.type, enabled=False):
        dtype = _compute_dtype(tokens)
        tok = tokens.to(dtype).contiguous()
        mtok = tok if same else metric.to(dtype).contiguous()
        ctr = _pool_sequence(tok, (H, W), (h, w))
        mctr = ctr if same else _pool_sequence(mtok, (H, W), (h, w))
        if _use_sparse(tokens.device, temperature):
            pattern = _window_pattern(H, W, h, w, window_size, B,
                                      tokens.device, dtype)
            ctr, mctr, labels = _cluster_sparse(tok, mtok, ctr, mctr,
                                                pattern, n_iters,
                                                temperature, same, faithful,
                                                with_labels)
        else:
            cand, valid = window_candidates((H, W), (h, w), window_size,
                                            tokens.device)
            ctr, mctr, labels = _cluster_dense(tok, mtok, ctr, mctr, cand,
                                               valid, M, n_iters,
                                               temperature, same, faithful,
                                               with_labels)
    return ctr.to(out_dtype), mctr.to(metric_dtype), labels


def cluster_hard_labels(metric: Tensor,
                        metric_centers: Tensor,
                        hw: Tuple[int, int],
                        grid: Tuple[int, int],
                        window_size: int = 5,
                        faithful: bool = False) -> Tensor:
    """Hard labels of a finished clustering: the nearest centre of each
    token among the clusters of its locality window (``faithful``: among
    all clusters, reference quirk 9 in docs/methods/expedit.md); ties go to
    the lowest cluster index.

    Args:
        metric: (B, H*W, D) distance features of the tokens (row-major).
        metric_centers: (B, h*w, D) final centres of those features.
        hw, grid, window_size: as :func:`cluster_tokens`.

    Returns:
        (B, H*W) int64, the same as the ``hard_labels`` of
        :func:`cluster_token_sequence`.
    """
    B, N, _ = metric.shape
    H, W = int(hw[0]), int(hw[1])
    h, w = int(grid[0]), int(grid[1])
    with torch.no_grad(), torch.autocast(device_type=metric.device.type,
                                         enabled=False):
        dtype = _compute_dtype(metric)
        mtok = metric.to(dtype)
        mctr = metric_centers.to(dtype)
        if faithful:
            return _pairwise_sqdist(mctr, mtok).argmin(1)
        if _use_sparse(metric.device, 1.0):
            pattern = _window_pattern(H, W, h, w, window_size, B,
                                      metric.device, dtype)
            return pattern.labels(_with_ones(mtok), mctr)
        cand, valid = window_candidates((H, W), (h, w), window_size,
                                        metric.device)
        dist = torch.gather(
            _pairwise_sqdist(mtok, mctr), 2,
            cand.expand(B, -1, -1)).masked_fill(~valid, float('inf'))
        slot = dist.argmin(-1)
        return torch.gather(cand.expand(B, -1, -1), 2,
                            slot[..., None]).squeeze(-1)


def clustering_outliers(metric: Tensor,
                        metric_centers: Tensor,
                        labels: Tensor,
                        num_keep: int) -> Tensor:
    """The tokens a finished clustering represents worst (vtseg extension,
    docs/expedit.md, "Keeping outliers unclustered").

    The residual of token n is its squared distance to the centre of its
    hard label, ``||metric[n] - metric_centers[labels[n]]||^2``: a token
    of a small object or a thin structure that shares its cluster with
    background has a large residual.

    Args:
        metric: (B, N, D) distance features of the clustered tokens.
        metric_centers: (B, M, D) final centres of those features.
        labels: (B, N) int64 hard labels (:func:`cluster_hard_labels`).
        num_keep: K, tokens to select per image (0 <= K <= N).

    Returns:
        (B, K) int64 token positions in ascending order (row-major, so the
        kept tokens keep their spatial order), the K largest residuals of
        each image (ties: as ``torch.topk``).
    """
    B, N, D = metric.shape
    if not 0 <= num_keep <= N:
        raise ValueError(f'num_keep={num_keep} must be in [0, N={N}]')
    if labels.shape != (B, N) or metric_centers.shape[0] != B or \
            metric_centers.shape[2] != D:
        raise ValueError(
            f'shape mismatch: metric {tuple(metric.shape)}, metric_centers '
            f'{tuple(metric_centers.shape)}, labels {tuple(labels.shape)} '
            '(expected (B, N, D), (B, M, D), (B, N))')
    with torch.no_grad(), torch.autocast(device_type=metric.device.type,
                                         enabled=False):
        dtype = _compute_dtype(metric)
        own = torch.gather(metric_centers.to(dtype), 1,
                           labels[..., None].expand(-1, -1, D))
        residual = (metric.to(dtype) - own).square().sum(-1)
        return residual.topk(num_keep, dim=1).indices.sort(dim=1).values


def keep_unclustered(index: Tensor, weight: Tensor, keep: Tensor,
                     num_clusters: int) -> Tuple[Tensor, Tensor]:
    """Reconstruction rows that copy kept tokens back to their positions.

    The token set after a clustering that keeps K tokens out is
    ``[M clusters, K kept tokens]``; the kept token j (position
    ``keep[b, j]``) is rebuilt from column ``M + j`` alone, with weight 1.

    Args:
        index, weight: (B, N, K') reconstruction rows over the M clusters
            (:func:`reconstruction_weights`, or hard labels with weight 1).
        keep: (B, K) int64 positions of the kept tokens.
        num_clusters: M.

    Returns:
        ``(index, weight)`` of the same shapes, for
        :func:`apply_reconstruction` on the (B, M + K, C) token set.
    """
    B, K = keep.shape
    if K == 0:
        return index, weight
    Kp = index.shape[2]
    own = torch.zeros(B, K, Kp, dtype=index.dtype, device=index.device)
    own[..., 0] = torch.arange(num_clusters, num_clusters + K,
                               device=index.device)
    one = torch.zeros(B, K, Kp, dtype=weight.dtype, device=weight.device)
    one[..., 0] = 1
    rows = keep[..., None].expand(-1, -1, Kp)
    return index.scatter(1, rows, own), weight.scatter(1, rows, one)


def _pool_sequence(tok: Tensor, hw: Tuple[int, int],
                   grid: Tuple[int, int]) -> Tensor:
    """Adaptive average pooling of (B, H*W, C) tokens to (B, h*w, C).

    The (B, H, W, C) view is a channels-last (B, C, H, W) tensor, for which
    PyTorch's CPU kernel is much faster than for the transposed layout."""
    B, _, C = tok.shape
    x = tok.view(B, hw[0], hw[1], C).permute(0, 3, 1, 2)
    pooled = F.adaptive_avg_pool2d(x, grid)
    return pooled.permute(0, 2, 3, 1).reshape(B, grid[0] * grid[1], C)


@functools.lru_cache(maxsize=32)
def _window_pattern(H: int, W: int, h: int, w: int, window_size: int,
                    B: int, device: torch.device,
                    dtype: torch.dtype) -> '_WindowPattern':
    """Cached :class:`_WindowPattern` (it depends on sizes only)."""
    cand, valid = window_candidates((H, W), (h, w), window_size, device)
    return _WindowPattern(cand, valid, B, h * w, dtype)


def _cluster_sparse(tok, mtok, ctr, mctr, pattern, n_iters, temperature,
                    same, faithful, with_labels=True):
    C = tok.shape[-1]
    # one weighted pass averages the tokens, the metric tokens (if any) and
    # the ones column (the denominator) together
    both = _with_ones(tok) if same else _with_ones(tok, mtok)
    mtok_aug = both.detach() if same else _with_ones(mtok.detach())
    for it in range(n_iters):
        with torch.no_grad():
            logits = pattern.to_padded(
                pattern.logits(mtok_aug, mctr.detach(), temperature),
                float('-inf'))
            assign = pattern.from_padded(logits.softmax(-1))
        if it == n_iters - 1:  # only the last update carries gradients
            avg = pattern.weighted_mean(assign, both)
        else:
            with torch.no_grad():
                avg = pattern.weighted_mean(assign, both)
        ctr = avg if same else avg[..., :C]
        mctr = ctr if same else avg[..., C:]
    labels = None
    if with_labels:
        with torch.no_grad():
            if faithful:
                labels = _pairwise_sqdist(mctr, mtok).argmin(1)
            else:
                labels = pattern.labels(mtok_aug, mctr.detach())
    return ctr, mctr, labels


def _cluster_dense(tok, mtok, ctr, mctr, cand, valid, M, n_iters,
                   temperature, same, faithful, with_labels=True):
    """The reference formulation: full (B, M, N) distances plus 1e16 on
    forbidden pairs."""
    N = tok.shape[1]
    allowed = torch.zeros(N, M, dtype=torch.bool, device=tok.device)
    rows = torch.arange(N, device=tok.device)[:, None].expand_as(cand)
    allowed[rows[valid], cand[valid]] = True
    penalty = (~allowed).t().to(tok.dtype) * LOCALITY_PENALTY  # (M, N)
    for _ in range(n_iters):
        with torch.no_grad():
            dist = _pairwise_sqdist(mctr, mtok) + penalty
            assign = (-dist * temperature).softmax(1)  # over clusters
            den = assign.sum(2, keepdim=True).clamp(min=1e-16)
        ctr = torch.bmm(assign, tok) / den
        mctr = ctr if same else torch.bmm(assign, mtok) / den
    if not with_labels:
        return ctr, mctr, None
    with torch.no_grad():
        dist = _pairwise_sqdist(mctr, mtok)
        if not faithful:
            dist = dist + penalty
        labels = dist.argmin(1)
    return ctr, mctr, labels


def cluster_tokens(x: Tensor,
                   grid: Tuple[int, int],
                   n_iters: int = 5,
                   temperature: float = 0.02,
                   window_size: int = 5,
                   *,
                   faithful: bool = False) -> Tuple[Tensor, Tensor]:
    """Group (H, W) patch tokens into an (h, w) grid of cluster tokens.

    Locally constrained soft k-means (docs/methods/expedit.md#clustering):
    centres start as the adaptive average pool of ``x``; token t may only
    join clusters within ``window_size // 2`` cells (rows and columns) of its
    initial cell (legacy ``nearest`` upsampling of the cluster index map);
    forbidden pairs get +1e16 on their distance. Each of the ``n_iters``
    iterations computes D = ||x_t||^2 + ||c_m||^2 - 2<c_m, x_t>,
    A = softmax(-temperature * D) over clusters, and
    c_m = sum_t A_mt x_t / max(sum_t A_mt, 1e-16) with A detached (gradients
    flow through the weighted sum only).

    Args:
        x: (B, C, H, W) patch tokens (any float dtype; computed in fp32).
        grid: (h, w) clusters, 1 <= h <= H, 1 <= w <= W.
        n_iters: number of updates.
        temperature: multiplies the distance (an inverse temperature).
        window_size: odd locality window side, in cells.
        faithful: hard labels as the reference (argmin over *all* clusters)
            instead of over the allowed ones
            (docs/methods/expedit.md#quirks, quirk 9).

    Returns:
        ``(centers, hard_labels)``: centres (B, h*w, C) in row-major grid
        order and dtype of ``x``; hard labels (B, H*W) int64, the nearest
        final centre of each token.
    """
    centers, _, labels = cluster_tokens_with_metric(
        x, None, grid, n_iters, temperature, window_size, faithful)
    return centers, labels


def reconstruct_tokens(x_low: Tensor,
                       feat_before: Tensor,
                       feat_after: Tensor,
                       k: int = 20,
                       temperature: float = 0.02,
                       *,
                       faithful: bool = False,
                       clamp_negative: Optional[bool] = None,
                       subtract_min: Optional[bool] = None) -> Tensor:
    """Rebuild N full-resolution tokens from M refined cluster tokens.

    W = exp(-temperature * S) with S_nm = ||f_n||^2 + ||s_m||^2 - 2<f_n, s_m>
    (f = ``feat_before``, s = ``feat_after``); entries below the k-th largest
    weight of their row are zeroed (ties at the k-th value are kept); each
    row is scaled to unit L2 norm (``F.normalize``, eps 1e-12); Y = W X.
    Equals ``apply_reconstruction(x_low, *reconstruction_weights(...))``.

    Args:
        x_low: (B, M, C) refined cluster tokens.
        feat_before: (B, N, D) full-resolution tokens at clustering time.
        feat_after: (B, M, D) cluster centres at clustering time.
        k: neighbours kept per token (1 <= k <= M); k < 0 keeps all.
        temperature: inverse temperature on squared distances.
        faithful: raw reference arithmetic (sets both options below to
            False unless given).
        clamp_negative: clamp negative squared distances (float
            cancellation) to 0 (docs/methods/expedit.md#quirks, quirk 6);
            default ``not faithful``.
        subtract_min: subtract each row's minimum of temperature * S before
            exp, so that the nearest cluster gets weight 1 and rows never
            underflow to all zeros (docs/methods/expedit.md#quirks, quirk 7;
            identical after normalisation); default ``not faithful``.

    Returns:
        (B, N, C) tokens in the dtype of ``x_low``. Gradients flow to all
        three inputs, as in the reference.
    """
    if x_low.dim() != 3:
        raise ValueError('x_low, feat_before, feat_after must be (B, M, C), '
                         '(B, N, D), (B, M, D)')
    B, M, C = x_low.shape
    if feat_after.dim() == 3 and feat_after.shape[:2] != (B, M):
        raise ValueError(
            f'shape mismatch: x_low {tuple(x_low.shape)}, feat_before '
            f'{tuple(feat_before.shape)}, feat_after '
            f'{tuple(feat_after.shape)} (expected (B, M, C), (B, N, D), '
            '(B, M, D))')
    out_dtype = x_low.dtype
    with torch.autocast(device_type=x_low.device.type, enabled=False):
        dtype = _compute_dtype(x_low)
        xl = x_low.to(dtype)
        if k < 0:
            index, weight = reconstruction_weights(
                feat_before, feat_after, k, temperature, faithful=faithful,
                clamp_negative=clamp_negative, subtract_min=subtract_min)
            out = torch.bmm(weight.to(dtype), xl)
        else:
            index, weight = reconstruction_weights(
                feat_before, feat_after, k, temperature, faithful=faithful,
                clamp_negative=clamp_negative, subtract_min=subtract_min)
            out = apply_reconstruction(xl, index, weight.to(dtype))
    return out.to(out_dtype)


def _reconstruction_sqdist(feat_before, feat_after, k, dtype) -> Tensor:
    """Checked inputs -> (B, N, M) squared distances S (unclamped)."""
    if feat_before.dim() != 3 or feat_after.dim() != 3:
        raise ValueError('feat_before, feat_after must be (B, N, D), '
                         '(B, M, D)')
    B, M, D = feat_after.shape
    if feat_before.shape[0] != B or feat_before.shape[2] != D:
        raise ValueError(
            f'shape mismatch: feat_before {tuple(feat_before.shape)}, '
            f'feat_after {tuple(feat_after.shape)} (expected (B, N, D), '
            '(B, M, D))')
    if k == 0 or k > M:
        raise ValueError(f'k={k} must be in [1, {M}] (the number of '
                         'clusters) or negative (keep all)')
    return _pairwise_sqdist(feat_before.to(dtype), feat_after.to(dtype))


def _resolve_quirks(faithful, clamp_negative, subtract_min):
    clamp_negative = (not faithful) if clamp_negative is None \
        else clamp_negative
    subtract_min = (not faithful) if subtract_min is None else subtract_min
    return clamp_negative, subtract_min


def reconstruction_weights(
        feat_before: Tensor,
        feat_after: Tensor,
        k: int = 20,
        temperature: float = 0.02,
        *,
        faithful: bool = False,
        clamp_negative: Optional[bool] = None,
        subtract_min: Optional[bool] = None) -> Tuple[Tensor, Tensor]:
    """The kept entries of :func:`reconstruct_tokens`' weight matrix W.

    Row n of W (B, N, M) has ``weight[b, n, j]`` at column ``index[b, n, j]``
    and zeros elsewhere. The matrix depends on the clustering-time features
    only, so the reconstruction is linear in the cluster tokens: any linear
    map L of the rebuilt tokens equals ``W (X L)``, computed on M instead of
    N tokens (what ``TokenReconstruction(defer_to_head=True)`` exploits).

    Args:
        feat_before, feat_after, k, temperature, faithful, clamp_negative,
        subtract_min: as :func:`reconstruct_tokens`.

    Returns:
        ``(index, weight)``: (B, N, K) int64 and (B, N, K) fp32 (fp64 for
        fp64 inputs), rows of unit L2 norm. K = k, more when ties at the
        k-th value are kept; K = M when k < 0 (index = 0..M-1).
    """
    clamp, shift = _resolve_quirks(faithful, clamp_negative, subtract_min)
    if temperature < 0:
        raise ValueError(f'temperature={temperature} must be >= 0')
    with torch.autocast(device_type=feat_before.device.type, enabled=False):
        dtype = _compute_dtype(feat_before)
        sq = _reconstruction_sqdist(feat_before, feat_after, k, dtype)
        B, N, M = sq.shape
        if k < 0:
            if clamp:
                sq = sq.clamp(min=0)
            logits = -temperature * sq
            if shift:
                logits = logits - logits.amax(-1, keepdim=True).detach()
            index = torch.arange(M, device=sq.device).expand(B, N, M)
            return index, F.normalize(logits.exp(), dim=2)
        return _topk_rows(sq, k, temperature, clamp, shift)


def apply_reconstruction(x_low: Tensor, index: Tensor,
                         weight: Tensor) -> Tensor:
    """Y = W X for the sparse W of :func:`reconstruction_weights`.

    Args:
        x_low: (B, M, C) values per cluster (cluster tokens, or any linear
            function of them, e.g. a layer's outputs on the clusters).
        index: (B, N, K) int64 cluster of each kept entry.
        weight: (B, N, K) its weight (same dtype as ``x_low``).

    Returns:
        (B, N, C). One weighted ``embedding_bag`` (N * K * C multiply-adds;
        no (B, N, K, C) gather is built). Differentiable w.r.t. ``x_low`` and
        ``weight``.
    """
    B, M, C = x_low.shape
    N, K = index.shape[1], index.shape[2]
    if index.shape != weight.shape or index.shape[0] != B:
        raise ValueError(f'index {tuple(index.shape)} and weight '
                         f'{tuple(weight.shape)} must both be (B={B}, N, K)')
    flat_idx = index + (torch.arange(B, device=index.device) * M)[:, None,
                                                                 None]
    out = F.embedding_bag(flat_idx.reshape(B * N, K),
                          x_low.reshape(B * M, C), mode='sum',
                          per_sample_weights=weight.reshape(B * N, K))
    return out.view(B, N, C)


def _smallest(sq: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """``torch.topk(sq, k, dim=2, largest=False)`` (values differentiable).

    For k <= 8 on CPU, k passes of ``argmin`` are faster than
    ``torch.topk`` (0.96 vs 1.57 ms for 705 x 247 at k = 5, 1 thread)."""
    if k > 8 or sq.device.type != 'cpu':
        return torch.topk(sq, k, dim=2, largest=False)
    with torch.no_grad():
        work = sq.detach().clone()
        idx = torch.empty(sq.shape[:-1] + (k, ), dtype=torch.long,
                          device=sq.device)
        for j in range(k):
            nearest = work.argmin(2, keepdim=True)
            idx[..., j:j + 1] = nearest
            work.scatter_(2, nearest, float('inf'))
    return sq.gather(2, idx), idx


def _topk_rows(sq: Tensor, k: int, temperature: float, clamp: bool,
               shift: bool) -> Tuple[Tensor, Tensor]:
    """Top-k weights per row from squared distances, ties at the k-th value
    kept, rows scaled to unit L2 norm; (B, N, M) -> index, weight (B, N, K).

    The weight exp(-t * S) is monotonic in S (and clamping negative S to 0
    keeps the order up to ties), so the top-k runs on S and the clamp,
    temperature, row shift and exp touch the kept entries only. Ties are
    ties of the (clamped) distance."""
    top, idx = _smallest(sq, k)
    if clamp:
        top = top.clamp(min=0)
    with torch.no_grad():
        kth = top[..., -1:].detach()
        # Kept zeros (a row whose k-th weight underflows) add nothing, so
        # ties matter only where that weight is > 0; ties at the k-th value
        # may keep more than k, then a second, wider top-k is taken.
        base = top[..., :1].detach() if shift else 0
        alive = (-temperature * (kth - base)).exp() > 0
        if temperature == 0:  # all weights equal: every entry ties
            ties = torch.full_like(kth, sq.shape[2], dtype=torch.long)
        else:
            ties = (sq <= kth).sum(2, keepdim=True)
        ties = ties.masked_fill_(~alive, k)
        k_eff = int(ties.max())
    if k_eff > k:
        top, idx = torch.topk(sq, k_eff, dim=2, largest=False)
        if clamp:
            top = top.clamp(min=0)
    logits = -temperature * top
    if shift:
        # the nearest cluster gets weight 1 (docs/methods/expedit.md, quirk 7)
        logits = logits - logits[..., :1].detach()
    vals = logits.exp()
    if k_eff > k and temperature != 0:
        vals = torch.where(top <= kth, vals, torch.zeros_like(vals))
    # Same norm as F.normalize over the dense row: the other entries are 0.
    vals = vals / vals.norm(dim=2, keepdim=True).clamp(min=1e-12)
    return idx, vals


def cluster_flops(num_tokens: int, num_clusters: int, channels: int,
                  n_iters: int = 5, num_pairs: Optional[int] = None,
                  metric_channels: Optional[int] = None,
                  hard_labels: bool = True) -> int:
    """Multiply-adds of one clustering call for one image
    (docs/methods/flops_and_speed.md#what-is-counted).

    Pooling N*C; per iteration P*C (distances) + P (softmax) + P*C (centre
    update); one more distance pass for the hard labels (left out with
    ``hard_labels=False``: the token stages skip it). P is the number of
    (token, cluster) pairs evaluated: M*N in the dense formula of
    docs/methods/flops_and_speed.md, or the allowed pairs only
    (``window_candidates(...)[1].sum()``) for the windowed implementation.
    With separate distance features of ``metric_channels`` D
    (:func:`cluster_tokens_with_metric`), distances cost P*D, both centre
    sets are pooled and updated, and preparing the features costs N*D.
    """
    N, M, C = num_tokens, num_clusters, channels
    P = M * N if num_pairs is None else num_pairs
    labels = 1 if hard_labels else 0
    if metric_channels is None:
        return N * C + n_iters * (2 * P * C + P) + labels * P * C
    D = metric_channels
    return (N * D + N * (C + D) + n_iters * (P * D + P + P * (C + D)) +
            labels * P * D)


def reconstruct_flops(num_tokens: int, num_clusters: int, channels: int,
                      k: int = 20, dense_product: bool = True) -> int:
    """Multiply-adds of one reconstruction for one image
    (docs/methods/flops_and_speed.md#what-is-counted): N*M*C distances +
    N*M for exp and top-k + the product, N*M*C in the dense formula or
    N*k*C on the kept entries (``dense_product=False``)."""
    N, M, C = num_tokens, num_clusters, channels
    kk = M if (dense_product or k < 0) else min(k, M)
    return N * M * C + N * M + N * kk * C
