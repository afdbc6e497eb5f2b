"""Fast bilateral solver (Barron & Poole, ECCV 2016) on a bilateral grid.

Used by TokenCut's saliency mode (docs/methods/tokencut.md#saliency-mode,
step 4) to snap a coarse token mask to image edges. Written here because no
maintained package ships it; this is a clean re-statement of the standard
algorithm with ``scipy.sparse``:

1. Every pixel gets an integer 5-D grid vertex (x / s_xy, y / s_xy,
   Y / s_l, U / s_c, V / s_c) (floor; YUV from RGB in 0..255, chroma offset
   128). ``S`` (V x P) splats pixels to the occupied vertices; its transpose
   slices back.
2. Blur ``B`` = 2 * dim * I + the [1, 0, 1] neighbour sums along each of the
   5 axes, restricted to occupied vertices.
3. Bistochastisation: n <- sqrt(n * m / (B n)) for 10 iterations from n = 1,
   m = S 1; then m = n * (B n).
4. Solve (lam (D_m - D_n B D_n) + diag(S c)) y = S (c * t) with Jacobi-
   preconditioned conjugate gradients (start S(c t) / S c), output S^T y.

Defaults are TokenCut's command-line values: sigmas spatial 16, luma 16,
chroma 8; lambda 256, A_diag_min 1e-5, CG tolerance 1e-5, 25 iterations.
"""
from typing import Tuple

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import linalg as spla

__all__ = ['bilateral_grid', 'bilateral_solve', 'clean_binary_mask',
           'rgb_to_yuv']

_RGB_TO_YUV = np.array([[0.299, 0.587, 0.114],
                        [-0.168736, -0.331264, 0.5],
                        [0.5, -0.418688, -0.081312]])
_YUV_OFFSET = np.array([0.0, 128.0, 128.0])


def rgb_to_yuv(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in 0..255 -> float64 YUV (JPEG matrix, chroma + 128)."""
    return np.tensordot(np.asarray(image, np.float64), _RGB_TO_YUV,
                        ([2], [1])) + _YUV_OFFSET


class _Grid:
    """Splat matrix, blur matrix and vertex count of one image."""

    def __init__(self, image: np.ndarray, sigma_spatial: float,
                 sigma_luma: float, sigma_chroma: float):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'bilateral solver: reference image must be '
                             f'(H, W, 3) RGB, got shape {image.shape}')
        h, w = image.shape[:2]
        yuv = rgb_to_yuv(image)
        iy, ix = np.mgrid[:h, :w]
        coords = np.stack([
            (ix / sigma_spatial).astype(np.int64),
            (iy / sigma_spatial).astype(np.int64),
            (yuv[..., 0] / sigma_luma).astype(np.int64),
            (yuv[..., 1] / sigma_chroma).astype(np.int64),
            (yuv[..., 2] / sigma_chroma).astype(np.int64),
        ], axis=-1).reshape(-1, 5)
        coords -= coords.min(axis=0)  # non-negative for exact ravelling
        # one spare slot per axis so that +1 neighbours never wrap around
        dims = tuple(int(d) + 2 for d in coords.max(axis=0))
        keys = np.ravel_multi_index(coords.T, dims)
        uniq, first, pix_to_vert = np.unique(keys, return_index=True,
                                             return_inverse=True)
        self.npixels = h * w
        self.nvertices = len(uniq)
        self.S = sparse.csr_matrix(
            (np.ones(self.npixels), (pix_to_vert.ravel(),
                                     np.arange(self.npixels))),
            shape=(self.nvertices, self.npixels))
        verts = coords[first]
        strides = np.array([int(np.prod(dims[d + 1:])) for d in range(5)])
        blur = sparse.identity(self.nvertices, format='csr') * 10.0  # 2*dim
        for d in range(5):
            for off in (-1, 1):
                ok = (verts[:, d] + off) >= 0
                nkey = uniq + off * strides[d]
                loc = np.clip(np.searchsorted(uniq, nkey), 0, len(uniq) - 1)
                hit = ok & (uniq[loc] == nkey)
                src = np.flatnonzero(hit)
                blur = blur + sparse.csr_matrix(
                    (np.ones(len(src)), (src, loc[src])),
                    shape=(self.nvertices, self.nvertices))
        self.B = blur.tocsr()


def bilateral_grid(image: np.ndarray, sigma_spatial: float = 16,
                   sigma_luma: float = 16,
                   sigma_chroma: float = 8) -> Tuple[sparse.csr_matrix,
                                                     sparse.csr_matrix]:
    """Splat (V, P) and blur (V, V) matrices of an RGB image's grid."""
    g = _Grid(np.asarray(image), sigma_spatial, sigma_luma, sigma_chroma)
    return g.S, g.B


def bilateral_solve(image: np.ndarray,
                    target: np.ndarray,
                    confidence=0.999,
                    sigma_spatial: float = 16,
                    sigma_luma: float = 16,
                    sigma_chroma: float = 8,
                    lam: float = 256.0,
                    a_diag_min: float = 1e-5,
                    cg_tol: float = 1e-5,
                    cg_maxiter: int = 25,
                    bistochastize_iters: int = 10) -> np.ndarray:
    """Edge-aware smoothing of ``target`` guided by ``image``.

    Args:
        image: (H, W, 3) RGB reference image, values 0..255 (uint8 or float).
        target: (H, W) float map to refine (e.g. a binary token mask
            upsampled to the image).
        confidence: scalar or (H, W) per-pixel confidence (TokenCut: 0.999).
        sigma_spatial, sigma_luma, sigma_chroma: grid cell sizes.
        lam: smoothness weight. a_diag_min: Jacobi preconditioner clamp.
        cg_tol: relative CG tolerance (||r|| <= tol ||b||). cg_maxiter: CG
            iteration cap.

    Returns:
        float64 (H, W) soft output (not clipped; about [0, 1] for a binary
        target).
    """
    image = np.asarray(image)
    target = np.asarray(target, np.float64)
    if target.shape != image.shape[:2]:
        raise ValueError(f'bilateral solver: target shape {target.shape} '
                         f'differs from image shape {image.shape[:2]}')
    grid = _Grid(image, sigma_spatial, sigma_luma, sigma_chroma)
    S, B = grid.S, grid.B
    t = target.reshape(-1)
    c = np.broadcast_to(np.asarray(confidence, np.float64),
                        target.shape).reshape(-1)
    # bistochastisation
    m = np.asarray(S.sum(axis=1)).ravel()
    n = np.ones(grid.nvertices)
    for _ in range(bistochastize_iters):
        n = np.sqrt(n * m / (B @ n))
    m = n * (B @ n)
    Dn = sparse.diags(n)
    A_smooth = sparse.diags(m) - Dn @ B @ Dn
    c_splat = S @ c
    A = (lam * A_smooth + sparse.diags(c_splat)).tocsr()
    b = S @ (c * t)
    M = sparse.diags(1.0 / np.maximum(A.diagonal(), a_diag_min))
    y0 = b / c_splat
    y, _ = spla.cg(A, b, x0=y0, M=M, rtol=cg_tol, atol=0.0,
                   maxiter=cg_maxiter)
    return (S.T @ y).reshape(target.shape)


def clean_binary_mask(soft: np.ndarray, threshold: float = 0.5
                      ) -> np.ndarray:
    """Visualisation mask from a soft map: threshold, fill holes, keep the
    largest connected component (all True when nothing is above threshold,
    as the reference). (H, W) float -> (H, W) bool."""
    binary = ndimage.binary_fill_holes(np.asarray(soft) > threshold)
    labels, num = ndimage.label(binary)
    if num == 0:
        return np.ones_like(binary, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))
