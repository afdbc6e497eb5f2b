"""Normalised cut on ViT patch tokens (TokenCut), as plain functions.

Method notes: docs/methods/tokencut.md. One image: tokens -> cosine affinity
graph -> second smallest generalised eigenvector of (D - W) x = lambda D x ->
bipartition at the mean -> 4-connected component around the seed -> box.
Also: several objects per image (:func:`ncut_multi`), a graph over the tokens
of several video frames (:func:`ncut_video`) and the CorLoc score
(:func:`corloc`, docs/methods/metrics.md#corloc).

Eigen solvers (``solver=``):

* ``'dense'``: ``scipy.linalg.eigh(D - W, D, subset_by_index=[1, 2])`` in
  float64, exactly the reference's call (the faithful path). O(N^3) time.
* ``'arpack'``: Lanczos (``scipy.sparse.linalg.eigsh``) on the normalised
  affinity M = D^-1/2 W D^-1/2 with its known top eigenvector D^1/2 1
  deflated, so the wanted vector is the *largest* eigenvector of the deflated
  matrix (fast convergence, no shift-invert). x = D^-1/2 u has the same
  scale as the dense solver's (x^T D x = 1). Seeded deterministically with
  the centred degree vector (foreground tokens have low degree) plus a seeded
  random part; the residual is checked and the dense solver is the fallback.
* ``'lobpcg'``: ``scipy.sparse.linalg.lobpcg`` on the same deflated matrix.
* ``'auto'`` (default): dense below ``DENSE_MAX_TOKENS`` tokens (it is as fast
  there), ``'arpack'`` above.

All functions accept numpy arrays or torch tensors (any device); the eigen
problem is solved on the CPU in float64 and results go back to the input's
type / device.
"""
import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy import linalg as sla
from scipy import ndimage
from scipy import sparse
from mmengine.logging import print_log
from scipy.sparse import linalg as spla

from .ncut_foreground import (border_tokens, check_foreground_rule,
                              orient_cut, video_foreground)

__all__ = [
    'ncut', 'ncut_box', 'corloc', 'corloc_iou', 'centered_box',
    'ncut_affinity', 'fiedler_vector', 'ncut_multi', 'ncut_video',
    'build_video_graph', 'ncut_components', 'NCUT_SOLVERS', 'MULTI_DEFAULTS',
    'ncut_from_affinity', 'ncut_multi_from_affinity', 'is_uniform_graph',
    'component_box', 'video_cut_chunks', 'orient_video_chunks'
]

logger = logging.getLogger(__name__)

NCUT_SOLVERS = ('auto', 'dense', 'arpack', 'lobpcg')
#: 'auto' uses the dense solver up to this many tokens.
DENSE_MAX_TOKENS = 64
#: stopping-rule defaults of :func:`ncut_multi` (recursive mode).
MULTI_DEFAULTS = dict(min_tokens=2, max_eigval=0.9, max_area=0.6)
# residual ||M u - mu u|| accepted from the iterative solvers (||u|| = 1).
_RESIDUAL_TOL = 1e-8

ArrayLike = Union[np.ndarray, torch.Tensor]


# --------------------------------------------------------------- utilities
def _check_feats(feats: ArrayLike, name: str = 'feats') -> np.ndarray:
    """(N, C) finite features with N >= 2 -> numpy array (dtype kept)."""
    if isinstance(feats, torch.Tensor):
        arr = feats.detach().cpu().numpy()
    else:
        arr = np.asarray(feats)
    if arr.ndim != 2:
        raise ValueError(f'{name} must be (N, C) patch features, got shape '
                         f'{tuple(arr.shape)}')
    if arr.shape[0] < 2:
        raise ValueError(f'{name}: a normalised cut needs at least 2 tokens, '
                         f'got {arr.shape[0]} (is the image smaller than two '
                         'patches?)')
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ValueError(f'{name} contains NaN or inf values ({bad} of '
                         f'{arr.shape[0]} tokens); check the backbone input '
                         'and weights')
    return arr


def _check_grid(grid: Sequence[int], n: int) -> Tuple[int, int]:
    if len(grid) != 2:
        raise ValueError(f'grid must be (h, w), got {grid!r}')
    h, w = int(grid[0]), int(grid[1])
    if h * w != n:
        raise ValueError(f'grid {h}x{w} does not match {n} tokens')
    return h, w


def _like(ref, arr: np.ndarray):
    """numpy -> the container type / device of ``ref``."""
    if isinstance(ref, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(arr)).to(ref.device)
    return arr


def _l2_normalize(feats: np.ndarray) -> np.ndarray:
    # same rule as torch.nn.functional.normalize (eps 1e-12), in the input's
    # precision so that tau decisions match the reference
    norm = np.sqrt((feats * feats).sum(axis=1, keepdims=True))
    return feats / np.maximum(norm, np.asarray(1e-12, feats.dtype))


# ----------------------------------------------------------------- graph
def ncut_affinity(feats: ArrayLike,
                  tau: float = 0.2,
                  eps: float = 1e-5,
                  binary_graph: bool = True) -> np.ndarray:
    """TokenCut affinity matrix W
    (docs/methods/tokencut.md#image-mode, step 3).

    Args:
        feats: (N, C) patch features (no prefix tokens).
        tau: similarity threshold.
        eps: weight of the edges at or below ``tau``.
        binary_graph: True: W_ij = 1 where cos_ij > tau else eps. False
            (ablation): W_ij = cos_ij where cos_ij >= tau else eps.

    Returns:
        float64 (N, N) symmetric matrix.
    """
    x = _check_feats(feats)
    z = _l2_normalize(x)
    sim = z @ z.T  # in the input precision, like the reference
    if binary_graph:
        return np.where(sim > tau, 1.0, float(eps))
    w = sim.astype(np.float64)
    w[sim < tau] = eps
    return w


def is_uniform_graph(w: np.ndarray) -> bool:
    """True when every entry of the (N, N) affinity ``w`` has the same
    value (up to rounding): every token is linked to every other alike, so
    no cut exists (e.g. identical features, or a tau every pair exceeds)."""
    lo, hi = float(w.min()), float(w.max())
    return hi - lo <= 1e-12 * max(abs(hi), 1.0)


def _dense_fiedler(w: np.ndarray) -> Tuple[float, np.ndarray]:
    d = w.sum(axis=1)
    hi = 2 if w.shape[0] > 2 else 1
    vals, vecs = sla.eigh(np.diag(d) - w, np.diag(d), subset_by_index=[1, hi])
    return float(vals[0]), vecs[:, 0].copy()


def _start_vector(deg: np.ndarray, rng_seed: int = 0) -> np.ndarray:
    """Deterministic start in u-space: the D-centred degree vector (a cheap
    foreground guess, LOST's low-degree cue) plus a small random part so that
    it is never orthogonal to the wanted vector."""
    sq = np.sqrt(deg)
    x = deg - (deg * deg).sum() / deg.sum()
    u = sq * x
    nrm = np.linalg.norm(u)
    rnd = np.random.default_rng(rng_seed).standard_normal(deg.shape[0])
    rnd /= np.linalg.norm(rnd)
    return (u / nrm + 0.1 * rnd) if nrm > 0 else rnd


def _iterative_fiedler(matvec, deg: np.ndarray, solver: str,
                       ncv: Optional[int] = None
                       ) -> Optional[Tuple[float, np.ndarray]]:
    """Second generalised eigenpair from W's matvec via the deflated
    normalised affinity; None when it did not converge."""
    n = deg.shape[0]
    isq = 1.0 / np.sqrt(deg)
    u0 = np.sqrt(deg) / math.sqrt(deg.sum())

    def mv(u):
        u = np.asarray(u, dtype=np.float64)
        if u.ndim == 2:
            out = (isq[:, None] * matvec(isq[:, None] * u))
            return out - u0[:, None] * (u0 @ u)[None, :]
        return isq * matvec(isq * u) - u0 * (u0 @ u)

    op = spla.LinearOperator((n, n), matvec=mv, matmat=mv, dtype=np.float64)
    v0 = _start_vector(deg)
    v0 -= u0 * (u0 @ v0)
    try:
        if solver == 'arpack':
            ncv = ncv or min(n - 1, 32)
            vals, vecs = spla.eigsh(op, k=1, which='LA', v0=v0, ncv=ncv,
                                    tol=0, maxiter=max(1000, 10 * n))
            mu, u = float(vals[0]), vecs[:, 0]
        else:
            rnd = np.random.default_rng(1).standard_normal(n)
            x0 = np.stack([v0, rnd - u0 * (u0 @ rnd)], axis=1)
            vals, vecs = spla.lobpcg(op, x0, Y=u0[:, None], largest=True,
                                     tol=1e-10, maxiter=500)
            i = int(np.argmax(vals))
            mu, u = float(vals[i]), vecs[:, i]
    except (spla.ArpackNoConvergence, np.linalg.LinAlgError) as e:
        logger.debug('ncut: %s solver failed (%s)', solver, e)
        return None
    u = u / np.linalg.norm(u)
    res = np.linalg.norm(mv(u) - mu * u)
    if not np.isfinite(res) or res > _RESIDUAL_TOL * max(1.0, abs(mu)):
        logger.debug('ncut: %s residual %.3g too large', solver, res)
        return None
    return 1.0 - mu, isq * u


def fiedler_vector(w: Union[np.ndarray, sparse.spmatrix],
                   solver: str = 'auto',
                   rank_one: float = 0.0) -> Tuple[float, np.ndarray]:
    """Second smallest generalised eigenpair of (D - W) x = lambda D x.

    Args:
        w: (N, N) symmetric non-negative affinity, dense or scipy sparse.
        solver: one of :data:`NCUT_SOLVERS` (module docstring). Sparse ``w``
            never goes to the dense solver.
        rank_one: add ``rank_one`` to every entry of W implicitly (W + c 11^T,
            the eps edges of a sparse graph, without densifying it).

    Returns:
        (lambda_2, x): x float64 (N,), scaled so x^T D x = 1 (sign
        arbitrary).
    """
    if solver not in NCUT_SOLVERS:
        raise ValueError(f'solver must be one of {NCUT_SOLVERS}, got '
                         f'{solver!r}')
    is_sparse = sparse.issparse(w)
    n = w.shape[0]
    if n < 2:
        raise ValueError(f'a normalised cut needs at least 2 nodes, got {n}')
    deg = np.asarray(w.sum(axis=1)).ravel().astype(np.float64) + rank_one * n
    if (deg <= 0).any():
        raise ValueError(f'{int((deg <= 0).sum())} graph nodes have zero '
                         'degree (isolated tokens); use eps > 0 or tau < 1')
    use_dense = solver == 'dense' or (solver == 'auto'
                                      and n <= DENSE_MAX_TOKENS) or n < 4
    if use_dense:
        if is_sparse:
            w = w.toarray()
        return _dense_fiedler(np.asarray(w, np.float64) + rank_one)
    it_solver = 'arpack' if solver == 'auto' else solver
    w_mat = w.tocsr() if is_sparse else np.asarray(w, np.float64)

    def matvec(x):
        out = w_mat @ x
        if rank_one:
            out = out + rank_one * x.sum(axis=0)
        return out

    res = _iterative_fiedler(matvec, deg, it_solver)
    if res is None:
        if is_sparse and n > 20000:
            raise RuntimeError(f'ncut: the {it_solver} eigen solver did not '
                               f'converge on a {n}-node sparse graph and the '
                               'graph is too large for the dense fallback')
        logger.warning('ncut: %s solver did not converge on %d tokens, '
                       'falling back to the dense solver', it_solver, n)
        dense = w.toarray() if is_sparse else np.asarray(w, np.float64)
        return _dense_fiedler(dense + rank_one)
    return res


# ------------------------------------------------------------------- cut
def ncut_from_affinity(w: np.ndarray, solver: str = 'auto',
                       return_flip: bool = False,
                       foreground: str = 'reference',
                       border: Optional[np.ndarray] = None):
    """The normalised cut of :func:`ncut`, from an affinity matrix.

    Args:
        w: (N, N) symmetric float64 affinity (:func:`ncut_affinity`).
        solver: one of :data:`NCUT_SOLVERS`.
        return_flip: also return whether the eigenvector was negated (so
            that the partition is the foreground side).
        foreground: which side of the cut is the object, one of
            :data:`~vtseg.functional.ncut_foreground.IMAGE_FOREGROUND_RULES`
            (``'reference'``: the side of max |x|, TokenCut's rule).
        border: (N,) bool border tokens, needed by ``'border'``
            (:func:`~vtseg.functional.ncut_foreground.border_tokens`).

    Returns:
        (bipartition, eigvec, seed, lambda_2[, flipped]): bipartition (N,)
        bool foreground side (x > mean(x) or its complement, containing the
        seed); eigvec (N,) float64 x (x^T D x = 1, negated with the
        partition); seed: int, index of the foreground token of max |x|
        (with ``'reference'``: max |x| over all tokens); lambda_2: float,
        the cut's eigenvalue. A uniform graph (:func:`is_uniform_graph`)
        gives an all-True partition, a zero eigvec, seed 0 and
        lambda_2 = 1.
    """
    n = w.shape[0]
    flipped = False
    if is_uniform_graph(w):
        # Every token is connected to every other with one weight (e.g.
        # identical features): no cut exists. Defined result: one segment
        # holding everything, a zero eigenvector, seed 0.
        part, x, seed, lam = np.ones(n, bool), np.zeros(n), 0, 1.0
    else:
        lam, x = fiedler_vector(w, solver)
        part, x, seed, flipped = orient_cut(x, foreground, border)
    if return_flip:
        return part, x, seed, lam, flipped
    return part, x, seed, lam


def ncut(feats: ArrayLike,
         grid: Sequence[int],
         tau: float = 0.2,
         eps: float = 1e-5,
         binary_graph: bool = True,
         solver: str = 'auto',
         foreground: str = 'reference'):
    """Normalised-cut bipartition of one image's patch tokens (TokenCut).

    Args:
        feats: (N, C) patch features of an h x w grid, row-major, without
            prefix (cls / register) tokens. numpy or torch, any device.
        grid: (h, w) with h * w = N.
        tau: cosine-similarity threshold of the graph (0.2 in the paper).
        eps: weight of the non-edges (1e-5).
        binary_graph: binary edges (default) or similarities above ``tau``
            (ablation, see :func:`ncut_affinity`).
        solver: eigen solver, one of :data:`NCUT_SOLVERS`; ``'dense'`` is
            the reference's (faithful) path, the default is much faster on
            large grids and gives the same bipartition.
        foreground: which side is the object
            (:mod:`vtseg.functional.ncut_foreground`; ``'reference'``:
            TokenCut's max-|x| side, ``'border'``, ``'smaller'``).

    Returns:
        (bipartition, eigvec, seed):
            bipartition (h, w) bool: the foreground side (x > mean(x) or its
            complement), containing the seed; eigvec (h, w) float64: the
            second smallest generalised eigenvector x (x^T D x = 1), negated
            together with the partition;
            seed: int, flat index of the foreground token of max |x| (with
            ``'reference'``: of all tokens). numpy in -> numpy out, torch in
            -> torch out on the input's device.
            All-identical features (a uniform graph) give an all-True
            partition, a zero eigvec and seed 0.

    Raises:
        ValueError: NaN / inf features, fewer than 2 tokens, bad grid.
    """
    x = _check_feats(feats)
    h, w_ = _check_grid(grid, x.shape[0])
    w = ncut_affinity(x, tau, eps, binary_graph)
    part, vec, seed, _ = ncut_from_affinity(
        w, solver, foreground=foreground, border=border_tokens((h, w_)))
    return (_like(feats, part.reshape(h, w_)), _like(feats,
                                                     vec.reshape(h, w_)),
            seed)


# ------------------------------------------------------------------- box
def _patch_hw(patch_size) -> Tuple[int, int]:
    if isinstance(patch_size, (int, np.integer)):
        return int(patch_size), int(patch_size)
    ph, pw = patch_size
    return int(ph), int(pw)


def component_box(comp: np.ndarray,
                  patch_size: Union[int, Tuple[int, int]],
                  image_size: Optional[Sequence[int]] = None) -> np.ndarray:
    """Pixel box around the True tokens of a token mask.

    Args:
        comp: (h, w) bool token mask (not empty).
        patch_size: p or (p_h, p_w) in pixels.
        image_size: (H, W) of the unpadded image; x2 / y2 are clipped to it.

    Returns:
        (4,) float64 [x1, y1, x2, y2] in pixels (0-based, half-open).
    """
    ph, pw = _patch_hw(patch_size)
    rows = np.flatnonzero(comp.any(axis=1))
    cols = np.flatnonzero(comp.any(axis=0))
    box = np.array([cols[0] * pw, rows[0] * ph, (cols[-1] + 1) * pw,
                    (rows[-1] + 1) * ph], dtype=np.float64)
    if image_size is not None:
        box[2] = min(box[2], image_size[1])
        box[3] = min(box[3], image_size[0])
    return box


def ncut_box(bipartition: ArrayLike,
             seed: int,
             patch_size: Union[int, Tuple[int, int]],
             image_size: Optional[Sequence[int]] = None):
    """Box of the seed's 4-connected component
    (docs/methods/tokencut.md#image-mode, steps 7-8).

    Args:
        bipartition: (h, w) bool foreground tokens.
        seed: flat (row-major) index of the seed token; must be foreground.
        patch_size: p or (p_h, p_w) in pixels.
        image_size: (H, W) of the unpadded image; x2 / y2 are clipped to it.

    Returns:
        (box, component): box [x1, y1, x2, y2] float64 (4,) in pixels (0-based,
        half-open: x2 = (last column + 1) * p); component (h, w) bool.
        numpy in -> numpy out, torch in -> torch out.
    """
    if isinstance(bipartition, torch.Tensor):
        part = bipartition.detach().cpu().numpy()
    else:
        part = np.asarray(bipartition)
    if part.ndim != 2:
        raise ValueError(f'bipartition must be (h, w), got shape {part.shape}')
    part = part.astype(bool)
    seed = int(seed)
    if not 0 <= seed < part.size:
        raise ValueError(f'seed {seed} is outside the {part.shape} grid')
    r, c = divmod(seed, part.shape[1])
    if not part[r, c]:
        raise ValueError(f'seed {seed} (row {r}, col {c}) is not in the '
                         'bipartition')
    labels, _ = ndimage.label(part)  # default structure: 4-connectivity
    comp = labels == labels[r, c]
    box = component_box(comp, patch_size, image_size)
    return _like(bipartition, box), _like(bipartition, comp)


def centered_box(image_size: Sequence[int], fraction: float = 0.5
                 ) -> np.ndarray:
    """Baseline box: centred, covering ``fraction`` of the width and height.

    Args:
        image_size: (H, W).

    Returns:
        float64 (4,) [x1, y1, x2, y2].
    """
    H, W = float(image_size[0]), float(image_size[1])
    m = (1.0 - fraction) / 2.0
    return np.array([m * W, m * H, (1 - m) * W, (1 - m) * H])


# ---------------------------------------------------------------- CorLoc
def corloc_iou(box: ArrayLike, gt_boxes: ArrayLike,
               faithful: bool = False) -> np.ndarray:
    """IoU of one box with K boxes (docs/methods/metrics.md#corloc).

    IoU = inter / (w_a h_a + w_b h_b - inter + 1e-7), overlap clamped at 0, no
    +1 on widths / heights. ``faithful`` also adds 1e-7 to every height
    (the reference's yolov5 helper).

    Args:
        box: (4,) [x1, y1, x2, y2].
        gt_boxes: (K, 4).

    Returns:
        float64 (K,).
    """
    b = np.asarray(box, np.float64).reshape(4)
    g = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(b[2], g[:, 2]) - np.maximum(b[0], g[:, 0]), 0,
                 None)
    ih = np.clip(np.minimum(b[3], g[:, 3]) - np.maximum(b[1], g[:, 1]), 0,
                 None)
    inter = iw * ih
    e = 1e-7 if faithful else 0.0
    area_b = (b[2] - b[0]) * (b[3] - b[1] + e)
    area_g = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1] + e)
    return inter / (area_b + area_g - inter + 1e-7)


def corloc(pred_boxes: Sequence[ArrayLike],
           gt_boxes: Sequence[ArrayLike],
           iou_thr: float = 0.5,
           faithful: bool = False) -> float:
    """Fraction of images whose predicted box has IoU >= ``iou_thr`` with any
    ground-truth box of that image (docs/methods/metrics.md#corloc).

    Args:
        pred_boxes: one (4,) box per image.
        gt_boxes: per image a (K_i, 4) array; K_i = 0 counts as a miss.

    Returns:
        CorLoc in [0, 1] (0 for no images).
    """
    if len(pred_boxes) != len(gt_boxes):
        raise ValueError(f'{len(pred_boxes)} predicted boxes but '
                         f'{len(gt_boxes)} ground-truth entries')
    if not len(pred_boxes):
        return 0.0
    hits = 0
    for pb, gb in zip(pred_boxes, gt_boxes):
        if isinstance(gb, torch.Tensor):
            gb = gb.detach().cpu().numpy()
        if isinstance(pb, torch.Tensor):
            pb = pb.detach().cpu().numpy()
        gb = np.asarray(gb, np.float64).reshape(-1, 4)
        if len(gb) and (corloc_iou(pb, gb, faithful) >= iou_thr).any():
            hits += 1
    return hits / len(pred_boxes)


# -------------------------------------------------------- several objects
def ncut_components(bipartition: np.ndarray, eigvec: np.ndarray, seed: int,
                    min_tokens: int = 1) -> List[Dict]:
    """Every 4-connected foreground component, the seed's first, the others
    ranked by mean |x| (docs/methods/tokencut.md#requirements-from-users).

    Returns:
        list of dicts ``mask`` (h, w) bool, ``score`` (mean |x| of the
        component / max |x|, in [0, 1]), ``seed`` (flat index of the
        component's max |x| token).
    """
    part = np.asarray(bipartition, bool)
    vec = np.abs(np.asarray(eigvec, np.float64))
    labels, num = ndimage.label(part)
    top = vec.max() if vec.max() > 0 else 1.0
    seed_label = labels.flat[seed]
    out = []
    for lab in range(1, num + 1):
        comp = labels == lab
        if comp.sum() < min_tokens and lab != seed_label:
            continue
        flat = np.flatnonzero(comp.ravel())
        out.append(dict(mask=comp, score=float(vec.flat[flat].mean() / top),
                        seed=int(flat[np.argmax(vec.flat[flat])]),
                        is_seed=lab == seed_label))
    out.sort(key=lambda o: (not o['is_seed'], -o['score']))
    for o in out:
        o.pop('is_seed')
    return out


def ncut_multi(feats: ArrayLike,
               grid: Sequence[int],
               tau: float = 0.2,
               eps: float = 1e-5,
               binary_graph: bool = True,
               max_objects: int = 3,
               mode: str = 'recursive',
               min_tokens: int = 2,
               max_eigval: float = 0.9,
               max_area: float = 0.6,
               solver: str = 'auto',
               foreground: str = 'reference') -> List[Dict]:
    """Several objects per image (vtseg extension,
    docs/methods/tokencut.md#requirements-from-users).

    Modes:

    * ``'components'``: one cut; every 4-connected foreground component is an
      object, the seed's first, the rest by mean |x| (issue #24 behaviour).
    * ``'recursive'`` (default): cut, keep the seed's component as an object,
      remove its tokens from the graph and cut the remaining tokens again
      (MaskCut-style). Stopping rule: stop at ``max_objects``, or when fewer
      than ``2 * min_tokens`` tokens remain, or when the cheapest cut of the
      remaining tokens costs lambda_2 > ``max_eigval`` (nothing separates
      well any more), or when the new component is smaller than
      ``min_tokens`` or covers more than ``max_area`` of the remaining
      tokens (it is background, not an object). The first object is always
      the plain :func:`ncut` result.

    Args:
        feats, grid, tau, eps, binary_graph, solver, foreground: as
            :func:`ncut` (the foreground rule picks the object side of every
            cut, the border being the image's).

    Returns:
        list (at least one entry) of dicts: ``mask`` (h, w) bool, ``seed``
        (flat index), ``score`` in [0, 1] (components: mean |x| / max |x|;
        recursive: 1 - lambda_2 of the cut that found the object),
        ``eigval`` (recursive only).
    """
    if mode not in ('components', 'recursive'):
        raise ValueError(f"mode must be 'components' or 'recursive', got "
                         f'{mode!r}')
    x = _check_feats(feats)
    h, w_ = _check_grid(grid, x.shape[0])
    w_full = ncut_affinity(x, tau, eps, binary_graph)
    part, vec, seed, lam = ncut_from_affinity(
        w_full, solver, foreground=foreground,
        border=border_tokens((h, w_)))
    return ncut_multi_from_affinity(w_full, (h, w_), part, vec, seed, lam,
                                    max_objects, mode, min_tokens,
                                    max_eigval, max_area, solver, foreground)


def ncut_multi_from_affinity(w_full: np.ndarray, grid: Sequence[int],
                             part: np.ndarray, vec: np.ndarray, seed: int,
                             lam: float, max_objects: int = 3,
                             mode: str = 'recursive', min_tokens: int = 2,
                             max_eigval: float = 0.9, max_area: float = 0.6,
                             solver: str = 'auto',
                             foreground: str = 'reference') -> List[Dict]:
    """:func:`ncut_multi` from the affinity and its first cut.

    Args:
        w_full: (N, N) affinity of the image's tokens (N = h * w).
        grid: (h, w).
        part, vec, seed, lam: the first cut, as returned by
            :func:`ncut_from_affinity` on ``w_full``: (N,) bool, (N,)
            float64, int, float.
        max_objects, mode, min_tokens, max_eigval, max_area, solver,
            foreground: as :func:`ncut_multi` (``foreground`` orients the
            later cuts of the recursive mode; the first cut is given).

    Returns:
        :func:`ncut_multi`'s list of dicts (``mask`` (h, w) bool, ``seed``,
        ``score``, and ``eigval`` in recursive mode).
    """
    h, w_ = grid
    border = border_tokens((h, w_))
    if mode == 'components':
        objs = ncut_components(part.reshape(h, w_), vec.reshape(h, w_), seed,
                               min_tokens)
        return objs[:max_objects]
    objs = []
    remaining = np.ones(h * w_, bool)
    while True:
        labels, _ = ndimage.label(part.reshape(h, w_))
        comp = (labels == labels.flat[seed]).ravel()
        n_rem = int(remaining.sum())
        if objs and (comp.sum() < min_tokens
                     or comp.sum() > max_area * n_rem or lam > max_eigval):
            break
        objs.append(dict(mask=comp.reshape(h, w_), seed=int(seed),
                         score=float(np.clip(1.0 - lam, 0, 1)),
                         eigval=float(lam)))
        remaining &= ~comp
        idx = np.flatnonzero(remaining)
        if len(objs) >= max_objects or len(idx) < max(2 * min_tokens, 2):
            break
        sub_part, _, sub_seed, lam = ncut_from_affinity(
            w_full[np.ix_(idx, idx)], solver, foreground=foreground,
            border=border[idx])
        part = np.zeros(h * w_, bool)
        part[idx[sub_part]] = True
        seed = int(idx[sub_seed])
    return objs


# ------------------------------------------------------------------ video
def _normalize_frames(feats, name) -> np.ndarray:
    if isinstance(feats, torch.Tensor):
        feats = feats.detach().cpu().numpy()
    feats = np.asarray(feats)
    if feats.ndim != 3:
        raise ValueError(f'{name} must be (T, N, C) per-frame patch features, '
                         f'got shape {feats.shape}')
    if feats.shape[0] == 0:
        raise ValueError(f'{name}: the video has no frames')
    flat = _check_feats(feats.reshape(-1, feats.shape[-1]), name)
    return _l2_normalize(flat.astype(np.float32, copy=False))


def _fuse(sim, sf, fusion, alpha):
    if sf is None or fusion == 'img':
        return sim
    if fusion == 'mean':
        return (1 - alpha) * sim + alpha * sf
    if fusion == 'max':
        return np.maximum(sim, sf)
    if fusion == 'min':
        return np.minimum(sim, sf)
    if fusion == 'flow':
        return sf
    raise ValueError(f'unknown fusion {fusion!r}')


def build_video_graph(feats: np.ndarray,
                      flow_feats: Optional[np.ndarray] = None,
                      alpha: float = 0.5,
                      tau: float = 0.3,
                      fusion: str = 'mean',
                      edges_per_token: Optional[int] = None,
                      block_rows: Optional[int] = None,
                      seed: int = 0) -> sparse.csr_matrix:
    """Sparse video graph over M tokens, built block by block
    (docs/methods/tokencut.md#video-mode).

    Edge (i, j) where the fused similarity S_ij > tau; S = (1 - alpha) S_img +
    alpha S_flow (``fusion='mean'``; also 'max', 'min', 'img', 'flow').
    Only a ``block_rows`` x M slab of S is held at a time (default: about
    64 MiB of float32).

    ``edges_per_token`` bounds memory: when the graph would have more than
    M * edges_per_token edges, every off-diagonal edge is kept independently
    with probability q (one draw per unordered pair, so the graph stays
    symmetric) and weighted 1 / q: an unbiased estimate of W (degrees and
    W x are preserved in expectation), so the normalised cut of the sampled
    graph approximates the full one. The density is estimated from a sample
    of rows first. None keeps every edge (the reference; memory grows with
    the square of the token count). k-nearest-neighbour or temporal-window
    graphs are deliberately not offered: they equalise degrees or make the
    graph a temporal chain, and the cut then splits the video in time or
    texture instead of object / background (docs/tokencut.md).

    Args:
        feats: (M, C) L2-normalised tokens of all frames, frame-major.
        flow_feats: (M, C) L2-normalised flow tokens or None.

    Returns:
        (M, M) float32 symmetric CSR matrix (weights 1, or 1 / q when
        sampled; the diagonal is 1).
    """
    m = feats.shape[0]
    if block_rows is None:
        block_rows = max(1, 2**24 // m)
    rng = np.random.default_rng(seed)
    q = 1.0
    if edges_per_token is not None:
        rows = rng.choice(m, size=min(m, 512), replace=False)
        sim = _fuse(feats[rows] @ feats.T, None if flow_feats is None else
                    flow_feats[rows] @ flow_feats.T, fusion, alpha)
        density = float((sim > tau).mean())
        q = min(1.0, edges_per_token / max(density * m, 1e-12))
    rows_all, cols_all = [], []
    for start in range(0, m, block_rows):
        stop = min(start + block_rows, m)
        sim = _fuse(feats[start:stop] @ feats.T,
                    None if flow_feats is None else
                    flow_feats[start:stop] @ flow_feats.T, fusion, alpha)
        keep = sim > tau
        del sim
        if q < 1.0:
            # upper triangle only (j > i), one draw per pair, then mirrored
            keep &= np.arange(m)[None, :] > np.arange(start, stop)[:, None]
            keep &= rng.random(keep.shape, dtype=np.float32) < q
        r, c = np.nonzero(keep)
        del keep
        rows_all.append((r + start).astype(np.int32))
        cols_all.append(c.astype(np.int32))
    rows = np.concatenate(rows_all)
    cols = np.concatenate(cols_all)
    del rows_all, cols_all
    if q < 1.0:
        diag = np.arange(m, dtype=np.int32)
        data = np.concatenate([np.full(2 * len(rows), 1.0 / q, np.float32),
                               np.ones(m, np.float32)])
        rows, cols = (np.concatenate([rows, cols, diag]),
                      np.concatenate([cols, rows, diag]))
    else:
        data = np.ones(len(rows), np.float32)
    g = sparse.csr_matrix((data, (rows, cols)), shape=(m, m))
    g.sum_duplicates()
    return g


def video_cut_chunks(feats: ArrayLike,
                     grid: Sequence[int],
                     flow_feats: Optional[ArrayLike] = None,
                     alpha: float = 0.5,
                     tau: float = 0.3,
                     eps: float = 1e-5,
                     fusion: str = 'mean',
                     max_frames: int = 90,
                     edges_per_token: Optional[int] = None,
                     block_rows: Optional[int] = None,
                     solver: str = 'arpack',
                     faithful: bool = False):
    """The eigenvectors of :func:`ncut_video`, one chunk of frames at a
    time, before any foreground rule (arguments as :func:`ncut_video`).

    Yields:
        (t0, t1, x): frames t0..t1-1 and their (M,) float64 eigenvector
        (M = (t1 - t0) * h * w, frame-major, sign arbitrary); all zero when
        the chunk's graph is uniform (no cut exists).
    """
    f = _normalize_frames(feats, 'feats')
    T, n_tok = int(feats.shape[0]), int(feats.shape[1])
    h, w_ = _check_grid(grid, n_tok)
    n = h * w_
    ff = None
    if flow_feats is not None:
        ff = _normalize_frames(flow_feats, 'flow_feats')
        if ff.shape[0] != f.shape[0]:
            raise ValueError(f'flow_feats has {ff.shape[0]} tokens, feats '
                             f'{f.shape[0]}: one flow rendering per frame is '
                             'needed')
    if faithful:
        # the reference passes its alpha into the frame-sigma slot, so the
        # builder's default 0.5 is always used; and it has no eps
        eps, alpha = 0.0, 0.5
    if solver == 'dense' and min(T, max_frames) * n > 20000:
        raise ValueError(f'ncut_video: the dense solver needs '
                         f'{min(T, max_frames) * n} x {min(T, max_frames) * n}'
                         " float64 matrices; use solver='arpack'")
    if max_frames < 1:
        raise ValueError(f'max_frames must be >= 1, got {max_frames}')
    for t0 in range(0, T, max_frames):
        t1 = min(t0 + max_frames, T)
        sl = slice(t0 * n, t1 * n)
        m = (t1 - t0) * n
        g = build_video_graph(f[sl], None if ff is None else ff[sl], alpha,
                              tau, fusion, edges_per_token, block_rows)
        mib = (g.data.nbytes + g.indices.nbytes + g.indptr.nbytes) / 2**20
        print_log(
            f'ncut_video: frames {t0}-{t1 - 1}, {m} tokens, {g.nnz} edges '
            f'(graph {mib:.1f} MiB)', logger='current')
        if g.nnz == m * m and g.data.min() == g.data.max():
            x = np.zeros(m)
        else:
            _, x = fiedler_vector(g, solver, rank_one=eps)
        del g
        yield t0, t1, x


def ncut_video(feats: ArrayLike,
               grid: Sequence[int],
               flow_feats: Optional[ArrayLike] = None,
               alpha: float = 0.5,
               tau: float = 0.3,
               eps: float = 1e-5,
               fusion: str = 'mean',
               max_frames: int = 90,
               edges_per_token: Optional[int] = None,
               block_rows: Optional[int] = None,
               solver: str = 'arpack',
               faithful: bool = False,
               foreground: str = 'reference'):
    """Foreground of every frame from one graph over several frames' tokens
    (TokenCut video, docs/methods/tokencut.md#video-mode).

    Frames are processed in non-overlapping chunks of ``max_frames``; each
    chunk's graph is sparse (:func:`build_video_graph`), so memory grows with
    the number of edges, and with ``edges_per_token`` (unbiased edge
    sampling) it grows linearly in the number of tokens. ``eps`` adds
    eps to every pair *implicitly* (a rank-one term, never densified) so the
    graph is connected; the reference has no eps. ``faithful=True`` forces
    eps = 0, alpha = 0.5 (the reference's argument mix-up,
    docs/methods/tokencut.md#quirks, quirk 5) and the reference foreground
    rule.

    Args:
        feats: (T, N, C) patch features of T frames of an (h, w) grid.
        grid: (h, w), N = h * w.
        flow_feats: (T, N, C) features of the frames' optical-flow renderings,
            or None.
        alpha: weight of the flow similarity (``fusion='mean'``).
        tau: edge threshold (0.3 in the reference).
        solver: 'arpack' / 'lobpcg' (the dense solver is refused above 20,000
            tokens per chunk).
        foreground: which side of each chunk's cut is the object, one of
            :data:`~vtseg.functional.ncut_foreground.VIDEO_FOREGROUND_RULES`
            (:func:`~vtseg.functional.ncut_foreground.video_foreground`);
            ``'previous'`` carries the last frame's foreground into the
            next chunk.

    Returns:
        (foreground, eigvec): (T, h, w) bool and float64, numpy or torch like
        ``feats``. With ``'reference'`` the foreground contains the
        largest-|x| token (the reference: x is negated when its
        largest-magnitude entry is negative, then foreground = x > mean(x)).
        A chunk with a uniform graph is all foreground (zero eigvec).

    Raises:
        ValueError: empty video, NaN features, shape mismatches, an unknown
            foreground rule.
    """
    if len(feats.shape) != 3:
        raise ValueError(f'feats must be (T, N, C) per-frame patch features, '
                         f'got shape {tuple(feats.shape)}')
    if faithful:
        foreground = 'reference'
    check_foreground_rule(foreground, video=True, where='ncut_video: '
                          'foreground')
    T, n_tok = int(feats.shape[0]), int(feats.shape[1])
    h, w_ = _check_grid(grid, n_tok)
    n = h * w_
    chunks = video_cut_chunks(feats, grid, flow_feats, alpha, tau, eps,
                              fusion, max_frames, edges_per_token,
                              block_rows, solver, faithful)
    fg, vec_all = orient_video_chunks(chunks, (h, w_), foreground)
    return (_like(feats, fg.reshape(T, h, w_)),
            _like(feats, vec_all.reshape(T, h, w_)))


def orient_video_chunks(chunks, grid: Sequence[int],
                        foreground: str = 'reference'
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """Apply a foreground rule to the chunk eigenvectors of
    :func:`video_cut_chunks` (what :func:`ncut_video` does after the
    eigen-solves; the evaluation tools call it once per rule on the same
    chunks).

    Args:
        chunks: iterable of (t0, t1, x) in frame order, x (M,) float64.
        grid: (h, w) token grid of a frame.
        foreground: one of
            :data:`~vtseg.functional.ncut_foreground.VIDEO_FOREGROUND_RULES`.

    Returns:
        (foreground, eigvec): (T * h * w,) bool and float64, frame-major.
    """
    n = int(grid[0]) * int(grid[1])
    border = border_tokens(grid)
    fgs, vecs, previous = [], [], None
    for t0, t1, x in chunks:
        if not x.any():  # uniform graph: everything is one segment
            part = np.ones(x.shape[0], bool)
        else:
            part, x = video_foreground(x, t1 - t0, foreground, border,
                                       previous)
        previous = part[-n:]
        fgs.append(part)
        vecs.append(x)
    return np.concatenate(fgs), np.concatenate(vecs)
