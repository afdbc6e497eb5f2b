"""Saliency metrics (MAE, max F-beta, IoU, pixel accuracy) as numpy functions.

Definitions (docs/saliency.md has the full text; docs/methods/metrics.md,
both saliency protocols):

* Inputs per image: a prediction ``p`` (H, W) of floats in [0, 1] and a
  ground truth ``g`` (H, W) of booleans; optionally a boolean ``valid`` mask
  (pixels outside it are ignored everywhere).
* **MAE** = mean |p - g| over the image's valid pixels, averaged over images.
* **Thresholds** for the PR curve: t_k = k / 255 for k = 0, 1, ..., 254
  (255 thresholds); a pixel is predicted foreground at t_k when p > t_k,
  compared in float32 (p and t_k both rounded to float32, as float32 torch
  code compares them). So a map quantised to v / 255 (an
  8-bit PNG) is foreground at t_k exactly when v > k, whether it arrives
  as float32 or float64.
* **Precision / recall** at t_k: P = TP / (TP + FP) with P := 1 for an empty
  prediction; R = TP / (TP + FN) with R := 1 for an empty ground truth.
* **F-beta** = (1 + b2) P R / (b2 P + R) with b2 = beta^2 = 0.3; F := 0 where
  b2 P + R = 0 (P = R = 0), so nothing is ever NaN.
* **max F**, ``protocol='sod'`` (default; salient-object protocol,
  docs/methods/metrics.md#saliency-salient-object-protocol): average P and R
  over images per threshold first, then F of the means, then the maximum
  over thresholds. ``protocol='per_image'``
  (docs/methods/metrics.md#saliency-per-image-protocol, TokenCut): F per
  image and threshold, averaged over images, then the maximum.
* **IoU and Acc** at threshold 0.5 with the strict rule p > 0.5 (the same
  strict float32 rule as the PR curve), per image, averaged over images. IoU =
  TP / (TP + FP + FN) and := ``empty_iou`` (default 1.0: a correct empty
  prediction) when prediction and ground truth are both empty; with
  ``empty_iou=None`` such images are left out of the IoU mean only.
  Acc = (TP + TN) / valid pixels.
* Images with no valid pixel at all are left out of every mean.

Why hand-written: SOD toolkits (e.g. PySODMetrics) are not dependencies of
vtseg and use other threshold sets and empty-mask conventions; here the
thresholds and conventions are fixed by the project's issue. The PR curve is
computed from one ``np.bincount`` over the binned prediction per image (two
256-bin histograms, foreground and background pixels; bin b = number of
thresholds below p, so p > t_k <=> b > k), not 255 passes over the map, and
the per-image statistics are small (about 520 numbers), so a metric can
accumulate them image by image and gather them across ranks.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = [
    'SALIENCY_BETA2', 'SALIENCY_NUM_THRESHOLDS', 'saliency_thresholds',
    'saliency_image_stats', 'saliency_pr_curves', 'saliency_scores_from_stats',
    'saliency_scores', 'f_measure', 'min_max_normalize'
]

#: beta^2 of the F-measure used by the salient-object literature.
SALIENCY_BETA2 = 0.3
#: number of PR-curve thresholds, t_k = k / 255 for k = 0..254.
SALIENCY_NUM_THRESHOLDS = 255
# Histogram bins: b = #{k : t_k < p} in {0, ..., 255}, so p > t_k <=> b > k.
_NUM_BINS = SALIENCY_NUM_THRESHOLDS + 1
_THRESHOLDS32 = (np.arange(SALIENCY_NUM_THRESHOLDS) / 255.0).astype(np.float32)
# Padded with +inf: the look-up in _threshold_bins for p = 1 hits index 255.
_THRESHOLDS32_PADDED = np.append(_THRESHOLDS32, np.float32(np.inf))
_PROTOCOLS = ('sod', 'per_image')


def saliency_thresholds() -> np.ndarray:
    """The PR-curve thresholds t_k = k / 255, k = 0..254, as the float32
    values the comparison p > t_k uses: float32 (255,)."""
    return _THRESHOLDS32.copy()


def _threshold_bins(pred32: np.ndarray) -> np.ndarray:
    """b = #{k : t_k < p} for float32 p in [0, 1], the same as
    ``np.searchsorted(thresholds, p, 'left')`` but about 4x faster.

    b is floor(255 p) or floor(255 p) + 1 (float32 product), which one
    comparison settles; checked exhaustively against searchsorted on every
    float32 in [0, 1].
    """
    base = np.floor(pred32 * np.float32(255)).astype(np.int64)
    np.clip(base, 0, SALIENCY_NUM_THRESHOLDS, out=base)
    return base + (pred32 > _THRESHOLDS32_PADDED[base])


def min_max_normalize(pred: np.ndarray) -> np.ndarray:
    """Min-max normalise one map to [0, 1]
    (docs/methods/metrics.md#saliency-salient-object-protocol, optional).

    Args:
        pred: (H, W) float map (any range, finite).

    Returns:
        float64 (H, W): (pred - min) / (max - min); a constant map becomes
        all zeros.
    """
    pred = np.asarray(pred, dtype=np.float64)
    lo, hi = (pred.min(), pred.max()) if pred.size else (0.0, 0.0)
    if hi <= lo:
        return np.zeros_like(pred)
    return (pred - lo) / (hi - lo)


def f_measure(precision: np.ndarray,
              recall: np.ndarray,
              beta2: float = SALIENCY_BETA2) -> np.ndarray:
    """F-beta = (1 + b2) P R / (b2 P + R), with F := 0 where b2 P + R = 0.

    Args:
        precision, recall: arrays of the same shape (any), values in [0, 1].
        beta2: beta squared (0.3 in the saliency literature).

    Returns:
        float64 array of the broadcast shape, never NaN.
    """
    precision = np.asarray(precision, dtype=np.float64)
    recall = np.asarray(recall, dtype=np.float64)
    denom = beta2 * precision + recall
    num = (1.0 + beta2) * precision * recall
    return np.divide(num, denom, out=np.zeros_like(num), where=denom > 0)


def _check_image(pred, gt, valid, where: str):
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.ndim != 2:
        raise ValueError(f'{where}: prediction must be a 2-D (H, W) map, got '
                         f'shape {pred.shape}')
    if gt.shape != pred.shape:
        raise ValueError(f'{where}: ground truth shape {gt.shape} differs '
                         f'from prediction shape {pred.shape}')
    if not np.issubdtype(pred.dtype, np.floating):
        raise TypeError(f'{where}: prediction must be a float array in '
                        f'[0, 1], got dtype {pred.dtype}')
    if pred.size and not np.isfinite(pred).all():
        raise ValueError(f'{where}: prediction values must be finite and in '
                         '[0, 1], got NaN or inf')
    if pred.size and not (pred.min() >= 0 and pred.max() <= 1):
        raise ValueError(f'{where}: prediction values must be finite and in '
                         f'[0, 1], got range [{pred.min()}, {pred.max()}] '
                         '(apply sigmoid/softmax or min_max_normalize first)')
    if gt.dtype != bool:
        if gt.size and not np.isin(gt, (0, 1)).all():
            raise ValueError(f'{where}: ground truth must be boolean (or 0/1),'
                             f' got values {np.unique(gt)[:10].tolist()}')
        gt = gt.astype(bool)
    if valid is not None:
        valid = np.asarray(valid)
        if valid.shape != pred.shape:
            raise ValueError(f'{where}: valid mask shape {valid.shape} '
                             f'differs from prediction shape {pred.shape}')
        valid = valid.astype(bool)
    return pred, gt, valid


def saliency_image_stats(pred: np.ndarray,
                         gt: np.ndarray,
                         valid: Optional[np.ndarray] = None,
                         threshold: float = 0.5) -> Dict[str, np.ndarray]:
    """Sufficient statistics of one image for every saliency score.

    Args:
        pred: (H, W) float array in [0, 1], the saliency / foreground
            probability map.
        gt: (H, W) boolean (or 0/1) ground truth, True = salient.
        valid: optional (H, W) boolean; False pixels are ignored.
        threshold: binarisation threshold for IoU / Acc (rule pred > t,
            compared in float32).

    Returns:
        dict with
            ``hist``: int64 (2, 256): number of valid pixels per bin
            b = #{k : t_k < p} (p > t_k <=> b > k), row 0 background, row 1
            foreground ground truth; ``abs_err``: float, sum of |p - g|
            over valid pixels; ``num_pixels``: int, valid pixels; ``tp``,
            ``fp``, ``fn``, ``tn``: int, confusion counts at
            ``pred > threshold``.
    """
    pred, gt, valid = _check_image(pred, gt, valid, 'saliency_image_stats')
    if valid is not None:
        pred, gt = pred[valid], gt[valid]
    pred = pred.ravel()
    gt = gt.ravel()
    pred32 = pred.astype(np.float32, copy=False)
    bins = _threshold_bins(pred32)
    # One bincount for both rows: index = b + 256 * g.
    hist = np.bincount(bins + _NUM_BINS * gt, minlength=2 * _NUM_BINS)
    binary = pred32 > np.float32(threshold)
    pred = pred.astype(np.float64, copy=False)
    tp = int(np.count_nonzero(binary & gt))
    fp = int(np.count_nonzero(binary & ~gt))
    fn = int(np.count_nonzero(~binary & gt))
    return dict(
        hist=hist.reshape(2, _NUM_BINS).astype(np.int64),
        abs_err=float(np.abs(pred - gt).sum()),
        num_pixels=int(pred.size),
        tp=tp,
        fp=fp,
        fn=fn,
        tn=int(pred.size) - tp - fp - fn)


def saliency_pr_curves(stats: Sequence[Dict]) -> tuple:
    """Per-image precision and recall at the 255 thresholds.

    Args:
        stats: N outputs of :func:`saliency_image_stats`.

    Returns:
        (precision, recall): float64 (N, 255) each; column k is threshold
        t_k = k / 255 (rule p > t_k). P := 1 for an empty prediction,
        R := 1 for an empty ground truth.
    """
    if len(stats) == 0:
        empty = np.zeros((0, SALIENCY_NUM_THRESHOLDS))
        return empty, empty.copy()
    hist = np.stack([np.asarray(s['hist'], dtype=np.int64) for s in stats])
    # at_least[n, c, b] = pixels of class c with bin >= b; p > t_k <=> b > k.
    at_least = np.cumsum(hist[:, :, ::-1], axis=2)[:, :, ::-1]
    tp = at_least[:, 1, 1:].astype(np.float64)  # (N, 255)
    pred_pos = tp + at_least[:, 0, 1:]
    gt_pos = hist[:, 1, :].sum(axis=1, keepdims=True).astype(np.float64)
    precision = np.divide(
        tp, pred_pos, out=np.ones_like(tp), where=pred_pos > 0)
    recall = np.divide(
        tp,
        np.broadcast_to(gt_pos, tp.shape),
        out=np.ones_like(tp),
        where=np.broadcast_to(gt_pos > 0, tp.shape))
    return precision, recall


def saliency_scores_from_stats(stats: Sequence[Dict],
                               protocol: str = 'sod',
                               beta2: float = SALIENCY_BETA2,
                               empty_iou: Optional[float] = 1.0
                               ) -> Dict[str, float]:
    """Aggregate per-image statistics into the four saliency scores.

    Args:
        stats: outputs of :func:`saliency_image_stats`, one per image.
        protocol: ``'sod'`` (P and R averaged over images before F, the
            default) or ``'per_image'`` (F per image, then averaged).
        beta2: beta squared of the F-measure.
        empty_iou: IoU of an image whose prediction and ground truth are both
            empty at the 0.5 threshold; ``None`` leaves such images out of
            the IoU mean (NaN if no image is left).

    Returns:
        dict with float ``mae``, ``max_f``, ``iou``, ``acc`` (fractions in
        [0, 1]), plus nothing else.
    """
    if protocol not in _PROTOCOLS:
        raise ValueError(f'protocol must be one of {_PROTOCOLS}, got '
                         f'{protocol!r}')
    stats = [s for s in stats if s['num_pixels'] > 0]
    if not stats:
        raise ValueError('saliency scores need at least one image with valid '
                         'pixels, got none')
    num_pixels = np.array([s['num_pixels'] for s in stats], dtype=np.float64)
    abs_err = np.array([s['abs_err'] for s in stats], dtype=np.float64)
    mae = float(np.mean(abs_err / num_pixels))

    precision, recall = saliency_pr_curves(stats)
    if protocol == 'sod':
        f_curve = f_measure(precision.mean(0), recall.mean(0), beta2)
    else:
        f_curve = f_measure(precision, recall, beta2).mean(0)
    max_f = float(f_curve.max())

    tp, fp, fn, tn = (np.array([s[k] for s in stats], dtype=np.float64)
                      for k in ('tp', 'fp', 'fn', 'tn'))
    union = tp + fp + fn
    if empty_iou is None:
        defined = union > 0
        iou = float(np.mean(tp[defined] / union[defined])) \
            if defined.any() else float('nan')
    else:
        per_image = np.divide(
            tp, union, out=np.full_like(tp, float(empty_iou)),
            where=union > 0)
        iou = float(per_image.mean())
    acc = float(np.mean((tp + tn) / num_pixels))
    return dict(mae=mae, max_f=max_f, iou=iou, acc=acc)


def saliency_scores(preds: Sequence[np.ndarray],
                    gts: Sequence[np.ndarray],
                    valids: Optional[Sequence[Optional[np.ndarray]]] = None,
                    protocol: str = 'sod',
                    beta2: float = SALIENCY_BETA2,
                    threshold: float = 0.5,
                    empty_iou: Optional[float] = 1.0) -> Dict[str, float]:
    """MAE, max F-beta, IoU and pixel accuracy over a set of images.

    Args:
        preds: N float arrays (H_i, W_i) in [0, 1].
        gts: N boolean (or 0/1) arrays of the same shapes, True = salient.
        valids: optional N boolean arrays (or None entries); False pixels are
            ignored.
        protocol: ``'sod'`` (default: mean P and R over images, then F, then
            max over thresholds) or ``'per_image'`` (mean over images of the
            per-image F, then max).
        beta2: beta squared of the F-measure (0.3).
        threshold: IoU / Acc binarisation, pred > threshold.
        empty_iou: IoU when both masks are empty (see
            :func:`saliency_scores_from_stats`).

    Returns:
        dict with float ``mae``, ``max_f``, ``iou``, ``acc`` in [0, 1].
    """
    if len(preds) != len(gts):
        raise ValueError(f'got {len(preds)} predictions but {len(gts)} '
                         'ground-truth masks')
    if valids is not None and len(valids) != len(preds):
        raise ValueError(f'got {len(valids)} valid masks for {len(preds)} '
                         'predictions')
    stats: List[Dict] = []
    for i, (pred, gt) in enumerate(zip(preds, gts)):
        valid = None if valids is None else valids[i]
        try:
            stats.append(saliency_image_stats(pred, gt, valid, threshold))
        except (ValueError, TypeError) as err:
            raise type(err)(f'image {i}: {err}') from err
    return saliency_scores_from_stats(stats, protocol, beta2, empty_iou)
