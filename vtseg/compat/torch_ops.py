"""Pure-PyTorch versions of the compiled mmcv kernels that vtseg's configs use.

mmcv-lite ships mmcv's Python wrappers (``mmcv.ops.nms``, ``RoIAlign``, ...) but not
the C++/CUDA extension ``mmcv._ext`` they call. The functions here implement the
kernel contracts of that extension (same arguments, same in-place outputs), so the
unchanged mmcv wrappers, and mmdet code built on them, run on any device.
Semantics follow mmcv's CPU kernels; differences are documented per function.
"""
from typing import Tuple

import numpy as np
import torch
from torch import Tensor


# --------------------------------------------------------------------------- NMS
def nms(boxes: Tensor, scores: Tensor, iou_threshold: float,
        offset: int = 0) -> Tensor:
    """Greedy non-maximum suppression (the ``mmcv._ext.nms`` contract).

    Args:
        boxes: (N, 4) boxes as (x1, y1, x2, y2).
        scores: (N,) scores.
        iou_threshold: a box is suppressed when its IoU with a kept,
            higher-scoring box is strictly greater than this.
        offset: 0 or 1; box width is ``x2 - x1 + offset``.

    Returns:
        (K,) int64 indices of kept boxes, by decreasing score, on the input's
        device. Equal scores keep their input order (stable sort).
    """
    if boxes.numel() == 0:
        return boxes.new_zeros(0, dtype=torch.long)
    order = torch.sort(scores.detach().float(), descending=True,
                       stable=True).indices
    b = boxes.detach().double().cpu().numpy()[order.cpu().numpy()]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    # Boolean "alive" array and one vectorised IoU row per kept box: O(K * N)
    # time and O(N) memory, which suits the up to 10k boxes mmdet passes in.
    alive = np.ones(len(b), dtype=bool)
    keep = []
    for i in range(len(b)):
        if not alive[i]:
            continue
        keep.append(i)
        rest = np.nonzero(alive[i + 1:])[0] + i + 1
        if rest.size == 0:
            break
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) -
                       np.maximum(x1[i], x1[rest]) + offset)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) -
                       np.maximum(y1[i], y1[rest]) + offset)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        alive[rest[iou > iou_threshold]] = False
    keep_t = torch.as_tensor(keep, dtype=torch.long)
    return order[keep_t.to(order.device)].to(boxes.device)


# ------------------------------------------------------------------ bbox overlaps
def bbox_overlaps(bboxes1: Tensor, bboxes2: Tensor, mode: str = 'iou',
                  aligned: bool = False, offset: int = 0) -> Tensor:
    """IoU / IoF between boxes (the ``mmcv.ops.bbox_overlaps`` contract).

    Args:
        bboxes1: (M, 4) boxes (x1, y1, x2, y2).
        bboxes2: (N, 4) boxes.
        mode: ``'iou'`` or ``'iof'`` (intersection over the first box's area).
        aligned: if True, M == N and the result is (M,) pairwise overlaps.
        offset: 0 or 1, added to widths and heights.

    Returns:
        (M, N) overlaps, or (M,) when ``aligned``.
    """
    if aligned:
        lt = torch.maximum(bboxes1[:, :2], bboxes2[:, :2])
        rb = torch.minimum(bboxes1[:, 2:], bboxes2[:, 2:])
    else:
        lt = torch.maximum(bboxes1[:, None, :2], bboxes2[None, :, :2])
        rb = torch.minimum(bboxes1[:, None, 2:], bboxes2[None, :, 2:])
    wh = (rb - lt + offset).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area1 = (bboxes1[:, 2] - bboxes1[:, 0] + offset) * (
        bboxes1[:, 3] - bboxes1[:, 1] + offset)
    area2 = (bboxes2[:, 2] - bboxes2[:, 0] + offset) * (
        bboxes2[:, 3] - bboxes2[:, 1] + offset)
    if not aligned:
        area1 = area1[:, None]
        area2 = area2[None, :]
    denom = area1 + area2 - inter if mode == 'iou' else area1 + 0 * area2
    return inter / denom.clamp(min=torch.finfo(inter.dtype).eps)


# --------------------------------------------------------------------- RoIAlign
def _bilinear_corners(y: Tensor, x: Tensor, height: int, width: int):
    """Corner indices and weights of mmcv's ``bilinear_interpolate``.

    Args:
        y, x: sample coordinates of any (same) shape, in feature pixels.

    Returns:
        ``(idx, wts, valid)``: idx (..., 4) int64 flat indices ``yy * W + xx``,
        wts (..., 4) weights, valid (...) bool (False outside [-1, H] x [-1, W],
        where mmcv returns 0).
    """
    valid = (y >= -1.0) & (y <= height) & (x >= -1.0) & (x <= width)
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    y_low = y.floor().long()
    x_low = x.floor().long()
    y_top = y_low >= height - 1
    x_top = x_low >= width - 1
    y_low = torch.where(y_top, torch.full_like(y_low, height - 1), y_low)
    x_low = torch.where(x_top, torch.full_like(x_low, width - 1), x_low)
    y = torch.where(y_top, y_low.to(y.dtype), y)
    x = torch.where(x_top, x_low.to(x.dtype), x)
    y_high = torch.where(y_top, y_low, y_low + 1)
    x_high = torch.where(x_top, x_low, x_low + 1)
    ly = y - y_low
    lx = x - x_low
    hy = 1.0 - ly
    hx = 1.0 - lx
    idx = torch.stack([y_low * width + x_low, y_low * width + x_high,
                       y_high * width + x_low, y_high * width + x_high], -1)
    wts = torch.stack([hy * hx, hy * lx, ly * hx, ly * lx], -1)
    return idx, wts, valid


def _roi_sample_grid(rois: Tensor, pooled: Tuple[int, int],
                     spatial_scale: float, sampling_ratio: int,
                     aligned: bool):
    """Sample coordinates of every RoI bin, grouped by sampling grid size.

    Yields ``(roi_ids, ys, xs, gh, gw)`` with ys (R, PH, gh, 1, 1) and
    xs (R, 1, 1, PW, gw) in feature pixels, for groups of RoIs that share the
    per-bin sampling grid (gh, gw) (mmcv uses ``ceil(roi_size / pooled)`` when
    ``sampling_ratio <= 0``).
    """
    ph, pw = pooled
    off = 0.5 if aligned else 0.0
    r = rois[:, 1:].double() * spatial_scale - off
    x1, y1, x2, y2 = r.unbind(1)
    rw = x2 - x1
    rh = y2 - y1
    if not aligned:  # legacy mode forces rois to be at least 1x1
        rw = rw.clamp(min=1.0)
        rh = rh.clamp(min=1.0)
    bin_h = rh / ph
    bin_w = rw / pw
    if sampling_ratio > 0:
        gh_all = torch.full_like(rh, sampling_ratio, dtype=torch.long)
        gw_all = torch.full_like(rw, sampling_ratio, dtype=torch.long)
    else:
        gh_all = torch.ceil(rh / ph).long()
        gw_all = torch.ceil(rw / pw).long()
    key = gh_all * 100003 + gw_all
    for k in torch.unique(key).tolist():
        ids = torch.nonzero(key == k).flatten()
        gh, gw = int(gh_all[ids[0]]), int(gw_all[ids[0]])
        if gh <= 0 or gw <= 0:
            yield ids, None, None, gh, gw
            continue
        dev = rois.device
        py = torch.arange(ph, device=dev, dtype=torch.float64)
        iy = torch.arange(gh, device=dev, dtype=torch.float64)
        px = torch.arange(pw, device=dev, dtype=torch.float64)
        ix = torch.arange(gw, device=dev, dtype=torch.float64)
        ys = (y1[ids, None, None] + py[None, :, None] * bin_h[ids, None, None]
              + (iy[None, None, :] + 0.5) * bin_h[ids, None, None] / gh)
        xs = (x1[ids, None, None] + px[None, :, None] * bin_w[ids, None, None]
              + (ix[None, None, :] + 0.5) * bin_w[ids, None, None] / gw)
        yield ids, ys[:, :, :, None, None], xs[:, None, None, :, :], gh, gw


def roi_align(features: Tensor, rois: Tensor, output_size: Tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = 0,
              pool_mode: str = 'avg', aligned: bool = True,
              return_argmax: bool = False):
    """RoIAlign with mmcv's semantics, differentiable by autograd.

    Args:
        features: (B, C, H, W) feature map.
        rois: (R, 5) as (batch_index, x1, y1, x2, y2) in image pixels.
        output_size: (PH, PW) bins per RoI.
        spatial_scale: image pixels to feature pixels factor.
        sampling_ratio: samples per bin per axis; <= 0 means adaptive
            ``ceil(roi_size / output_size)``.
        pool_mode: ``'avg'`` (mean of samples) or ``'max'``.
        aligned: shift by half a pixel (mmcv ``aligned=True``).
        return_argmax: in max mode also return the (y, x) sample positions of
            the maxima, (R, C, PH, PW) each, -1 where the bin is empty.

    Returns:
        (R, C, PH, PW) pooled features (and the argmax positions if asked).
    """
    B, C, H, W = features.shape
    ph, pw = output_size
    R = rois.shape[0]
    out = features.new_zeros(R, C, ph, pw)
    arg_y = features.new_full((R, C, ph, pw), -1.0)
    arg_x = features.new_full((R, C, ph, pw), -1.0)
    # (C, B*H*W): every sample is one column, so a chunk of RoIs gathers its
    # samples with one index_select (whose backward is one index_add) instead
    # of copying its image's whole map per RoI.
    flat = features.permute(1, 0, 2, 3).reshape(C, B * H * W)
    batch_idx = rois[:, 0].long()
    for ids, ys, xs, gh, gw in _roi_sample_grid(rois, (ph, pw),
                                                 spatial_scale,
                                                 sampling_ratio, aligned):
        if ys is None:
            continue
        n = ids.numel()
        ys_full = ys.expand(n, ph, gh, pw, gw)
        xs_full = xs.expand(n, ph, gh, pw, gw)
        idx, wts, valid = _bilinear_corners(ys_full, xs_full, H, W)
        wts = wts * valid[..., None]
        # Chunk over RoIs to bound memory: n * C * samples * 4 values.
        per_roi = C * ph * gh * pw * gw * 4
        step = max(1, int(2 ** 26 // max(per_roi, 1)))
        for s in range(0, n, step):
            sl = slice(s, s + step)
            m = idx[sl].shape[0]
            gidx = idx[sl] + (batch_idx[ids[sl]] * (H * W)).view(
                m, 1, 1, 1, 1, 1)
            g = flat.index_select(1, gidx.reshape(-1))
            g = g.reshape(C, m, ph, gh, pw, gw, 4).transpose(0, 1)
            vals = (g * wts[sl, None].to(g.dtype)).sum(-1)
            if pool_mode == 'avg':
                pooled = vals.sum(dim=(3, 5)) / float(gh * gw)
            else:
                v = vals.permute(0, 1, 2, 4, 3, 5).reshape(
                    vals.shape[0], C, ph, pw, gh * gw)
                pooled, am = v.max(-1)
                sy = ys_full[sl].permute(0, 1, 3, 2, 4).reshape(
                    -1, 1, ph, pw, gh * gw).expand(-1, C, -1, -1, -1)
                sx = xs_full[sl].permute(0, 1, 3, 2, 4).reshape(
                    -1, 1, ph, pw, gh * gw).expand(-1, C, -1, -1, -1)
                arg_y[ids[sl]] = torch.gather(sy, 4, am[..., None])[
                    ..., 0].to(arg_y.dtype)
                arg_x[ids[sl]] = torch.gather(sx, 4, am[..., None])[
                    ..., 0].to(arg_x.dtype)
            out = out.index_copy(0, ids[sl], pooled.to(out.dtype))
    if return_argmax:
        return out, arg_y, arg_x
    return out


def roi_align_max_backward(grad_output: Tensor, rois: Tensor, argmax_y: Tensor,
                           argmax_x: Tensor, input_shape) -> Tensor:
    """Gradient of max-mode RoIAlign: each output's gradient goes to the four
    pixels around its argmax sample, with bilinear weights (as mmcv)."""
    B, C, H, W = input_shape
    grad_input = grad_output.new_zeros(B, C, H * W)
    has = argmax_y != -1.0  # mmcv marks empty bins with -1
    idx, wts, valid = _bilinear_corners(argmax_y.double(), argmax_x.double(),
                                        H, W)
    wts = wts * (valid & has)[..., None]
    contrib = grad_output[..., None] * wts.to(grad_output.dtype)  # R,C,PH,PW,4
    bidx = rois[:, 0].long()
    for b in range(B):
        sel = bidx == b
        if not sel.any():
            continue
        grad_input[b].scatter_add_(
            1, idx[sel].permute(1, 0, 2, 3, 4).reshape(C, -1),
            contrib[sel].permute(1, 0, 2, 3, 4).reshape(C, -1))
    return grad_input.reshape(B, C, H, W)


# --------------------------------------------------------------- focal loss
def sigmoid_focal_loss(logits: Tensor, target: Tensor, weight: Tensor,
                       gamma: float, alpha: float) -> Tensor:
    """Element-wise sigmoid focal loss, mmcv kernel semantics.

    Args:
        logits: (N, K) logits.
        target: (N,) int64 class index; ``K`` (or any value outside [0, K))
            means background for every class.
        weight: (K,) per-class weight or an empty tensor.

    Returns:
        (N, K) unreduced loss.
    """
    k = logits.shape[1]
    onehot = (target[:, None] == torch.arange(k, device=target.device)[None])
    onehot = onehot.to(logits.dtype)
    p = logits.sigmoid()
    log_p = torch.nn.functional.logsigmoid(logits)
    log_1p = torch.nn.functional.logsigmoid(-logits)
    loss = -(alpha * (1 - p).pow(gamma) * log_p * onehot +
             (1 - alpha) * p.pow(gamma) * log_1p * (1 - onehot))
    if weight is not None and weight.numel() > 0:
        # mmcv scales a sample's whole row by the weight of its target class.
        in_range = (target >= 0) & (target < k)
        w = torch.where(in_range, weight[target.clamp(0, k - 1)],
                        torch.ones_like(weight[:1]).expand(len(target)))
        loss = loss * w[:, None]
    return loss
