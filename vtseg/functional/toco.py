"""ToCo (Token Contrast, CVPR 2023): weakly supervised semantic segmentation
from image-level labels, as plain functions on tensors (docs/toco.md).

Everything here is batched (no Python loop over images), device-agnostic and
deterministic (random choices take an explicit ``torch.Generator``).

Shapes: B images, K' = K - 1 foreground classes (20 for VOC), (H, W) pixels,
(h, w) patch tokens, ``ignore_index`` 255 unless given.

Public contract (issue 12): :func:`cam_to_label`, :func:`label_to_affinity`,
:func:`ptc_loss`, :func:`ctc_loss`, :func:`par_refine`. The other functions
are the remaining steps of a ToCo training iteration (CAM normalisation, ROI
mask, local crops, PAR-refined pseudo labels, the balanced segmentation
loss, the token box).
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'cam_to_label', 'label_to_affinity', 'ptc_loss', 'ctc_loss',
    'par_refine', 'normalize_cam', 'cam_to_roi_mask', 'box_mask',
    'token_box', 'select_local_crops', 'extract_crops',
    'refine_cams_with_background', 'fuse_refined_labels',
    'balanced_seg_loss', 'labels_from_mask', 'token_cosine_similarity'
]

BoxLike = Union[Tensor, Sequence[Sequence[int]]]


def _as_box(valid_box: BoxLike, batch: int, device) -> Tensor:
    box = torch.as_tensor(valid_box, dtype=torch.long, device=device)
    if box.shape != (batch, 4):
        raise ValueError(f'valid_box must be (B={batch}, 4) [h0, h1, w0, w1]'
                         f', got shape {tuple(box.shape)}')
    return box


def box_mask(valid_box: BoxLike, size: Tuple[int, int],
             device=None) -> Tensor:
    """(B, 4) boxes [h0, h1, w0, w1] (end exclusive) -> (B, H, W) bool,
    True inside the box (Python slice semantics: negative or too large
    ends are clamped, an empty box gives no pixel)."""
    box = torch.as_tensor(valid_box, dtype=torch.long, device=device)
    if box.dim() != 2 or box.shape[1] != 4:
        raise ValueError('valid_box must be (B, 4) [h0, h1, w0, w1], got '
                         f'shape {tuple(box.shape)}')
    H, W = size
    rows = torch.arange(H, device=box.device)
    cols = torch.arange(W, device=box.device)
    r = (rows[None] >= box[:, 0:1]) & (rows[None] < box[:, 1:2])
    c = (cols[None] >= box[:, 2:3]) & (cols[None] < box[:, 3:4])
    return r[:, :, None] & c[:, None, :]


def cam_to_label(cam: Tensor,
                 cls_label: Tensor,
                 bkg_thre: float = 0.5,
                 high_thre: float = 0.7,
                 low_thre: float = 0.25,
                 ignore_mid: bool = False,
                 valid_box: Optional[BoxLike] = None,
                 ignore_index: int = 255) -> Tensor:
    """Pseudo label from class activation maps.

    Let v = max_c(cls_label_c * cam_c). The label is arg-max + 1 (class ids
    1..K'), and 0 (background) where v <= ``bkg_thre``. With ``ignore_mid``,
    pixels with v <= ``high_thre`` become ``ignore_index`` and then those
    with v <= ``low_thre`` become 0 (so ``bkg_thre`` has no effect). Pixels
    outside ``valid_box`` become ``ignore_index``. Ties in the arg-max go to
    the lowest class (``torch.max``).

    The reference applies ``ignore_mid`` only when a box is given; here it
    applies whenever it is set (identical results with a box).

    Args:
        cam: (B, K', H, W) CAMs in [0, 1].
        cls_label: (B, K') image labels in {0, 1}; absent classes' CAMs
            are zeroed.
        valid_box: None or (B, 4) [h0, h1, w0, w1] per image in the label's
            own coordinates.

    Returns:
        (B, H, W) int64.
    """
    if cam.dim() != 4 or cls_label.shape != cam.shape[:2]:
        raise ValueError(f'cam (B, C, H, W) and cls_label (B, C) expected, '
                         f'got {tuple(cam.shape)} and '
                         f'{tuple(cls_label.shape)}')
    valid_cam = cam * cls_label[:, :, None, None].to(cam.dtype)
    value, label = valid_cam.max(dim=1)
    label = label + 1
    label[value <= bkg_thre] = 0
    if ignore_mid:
        label[value <= high_thre] = ignore_index
        label[value <= low_thre] = 0
    if valid_box is not None:
        inside = box_mask(_as_box(valid_box, cam.shape[0], cam.device),
                          cam.shape[-2:])
        label = torch.where(inside, label, torch.full_like(label,
                                                           ignore_index))
    return label


def label_to_affinity(label: Tensor, ignore_index: int = 255) -> Tensor:
    """Pairwise affinity target of token labels.

    Args:
        label: (B, h, w) integer token labels.

    Returns:
        (B, h*w, h*w) int64: 1 where two tokens share a label, 0 otherwise,
        ``ignore_index`` on every row and column of an ignored token and on
        the diagonal.
    """
    B = label.shape[0]
    flat = label.reshape(B, -1)
    aff = (flat[:, :, None] == flat[:, None, :]).long()
    ign = flat == ignore_index
    aff[ign[:, :, None] | ign[:, None, :]] = ignore_index
    n = flat.shape[1]
    idx = torch.arange(n, device=label.device)
    aff[:, idx, idx] = ignore_index
    return aff


def token_cosine_similarity(tokens: Tensor, absolute: bool = True) -> Tensor:
    """(B, C, h, w) or (B, N, C)-as-(B, C, N) tokens -> (B, N, N) cosine
    similarity of all token pairs (L2 normalisation with eps 1e-8), its
    absolute value by default (PTC)."""
    x = tokens.reshape(tokens.shape[0], tokens.shape[1], -1)
    x = F.normalize(x, p=2, dim=1, eps=1e-8)
    sim = torch.matmul(x.transpose(1, 2), x)
    return sim.abs() if absolute else sim


def ptc_loss(tokens: Tensor, affinity: Tensor) -> Tensor:
    """Patch token contrast loss.

    ``0.5 * (1 - sum(pos * S) / (P + 1)) + 0.5 * sum(neg * S) / (Q + 1)``
    with S the absolute cosine similarity of all token pairs, P / Q the
    numbers of target-1 / target-0 entries over the whole batch (entries
    equal to anything else, e.g. 255, are ignored). All-ignore targets give
    0.5 (finite).

    Args:
        tokens: (B, C, h, w) final patch tokens.
        affinity: (B, h*w, h*w) from :func:`label_to_affinity`.

    Returns:
        scalar tensor.
    """
    sim = token_cosine_similarity(tokens, absolute=True)
    if affinity.shape != sim.shape:
        raise ValueError(f'affinity {tuple(affinity.shape)} does not match '
                         f'the token pairs {tuple(sim.shape)}')
    pos = (affinity == 1).to(sim.dtype)
    neg = (affinity == 0).to(sim.dtype)
    return 0.5 * (1 - (pos * sim).sum() / (pos.sum() + 1)) + \
        0.5 * (neg * sim).sum() / (neg.sum() + 1)


def ctc_loss(student: Tensor,
             teacher: Tensor,
             flags: Tensor,
             temp: float = 0.5,
             extra_term: bool = True) -> Tensor:
    """Class token contrast loss, the reference's ``CTCLoss_neg``.

    With l_{b,i,j} = <teacher_{b,i}, student_{b,j}> / temp (no L2
    normalisation) and Neg_{b,i} = sum over negative views j of
    exp(l_{b,i,j}), every positive view j adds
    -log(exp(l) / (exp(l) + Neg + 1e-4)); ``extra_term`` adds
    log(1 + Neg + 1e-4) once per image and teacher row (the reference's
    loop ``else`` clause, which always runs). Per image the sum is divided
    by 2 * (n_pos + 1e-4); the result is the mean over images. Computed in
    log space (log-sum-exp), so large logits do not overflow.

    Args:
        student: (ncrops * B, D), view-major (row v * B + b is view v of
            image b).
        teacher: (2 * B, D), the two global views, same layout.
        flags: (B, ncrops), 1 for positive views (the two global views and
            uncertain local crops), 0 for negative local crops.

    Returns:
        scalar tensor.
    """
    B, ncrops = flags.shape
    if student.shape[0] != ncrops * B or teacher.shape[0] != 2 * B:
        raise ValueError(f'student ({ncrops} * {B}, D) and teacher (2 * {B}'
                         f', D) expected, got {tuple(student.shape)} and '
                         f'{tuple(teacher.shape)}')
    s = student.reshape(ncrops, B, -1).transpose(0, 1)  # (B, V, D)
    t = teacher.reshape(2, B, -1).transpose(0, 1)  # (B, 2, D)
    logits = torch.matmul(t, s.transpose(1, 2)) / temp  # (B, 2, V)
    pos = flags > 0
    neg_inf = torch.finfo(logits.dtype).min
    neg_logits = logits.masked_fill(pos[:, None, :], neg_inf)
    log_neg = torch.logsumexp(neg_logits, dim=2, keepdim=True)  # (B, 2, 1)
    has_neg = (~pos).any(dim=1)[:, None, None]
    log_neg = torch.where(has_neg, log_neg, torch.full_like(log_neg,
                                                            neg_inf))
    log_eps = torch.full_like(log_neg, math.log(1e-4))
    denom = torch.logsumexp(
        torch.stack([logits, log_neg.expand_as(logits),
                     log_eps.expand_as(logits)]), dim=0)
    per_pos = (denom - logits) * pos[:, None, :].to(logits.dtype)
    loss = per_pos.sum(dim=(1, 2))  # (B,)
    if extra_term:
        extra = torch.logsumexp(
            torch.stack([torch.zeros_like(log_neg), log_neg, log_eps]),
            dim=0)
        loss = loss + extra.sum(dim=(1, 2))
    n_pos = pos.sum(dim=1).to(logits.dtype)
    return (loss / 2 / (n_pos + 1e-4)).mean()


def _dilated_neighbors(x: Tensor, dilations: Sequence[int]) -> Tensor:
    """(B, C, H, W) -> (B, C, 8 * len(dilations), H, W): the 8 neighbours at
    d * (dy, dx) in raster order for every dilation, replicate padding."""
    H, W = x.shape[-2:]
    out = []
    for d in dilations:
        p = F.pad(x, [d] * 4, mode='replicate')
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == 0 and dx == 0:
                    continue
                out.append(p[..., d + dy * d:d + dy * d + H,
                             d + dx * d:d + dx * d + W])
    return torch.stack(out, dim=2)


def par_refine(images: Tensor,
               masks: Tensor,
               dilations: Sequence[int] = (1, 2, 4, 8, 12, 24),
               num_iter: int = 10,
               renormalize: bool = False) -> Tensor:
    """Pixel-adaptive refinement (PAR), numerically the reference's ``PAR``.

    The masks are resized to the image size (bilinear, align_corners=True).
    For every pixel, its 8 * len(dilations) dilated neighbours (replicate
    padding) get the affinity softmax_n(mean_rgb(-(|I_n - I| / (std_n(I)
    + 1e-8) / 0.3)^2)) + 0.01 * softmax_n(-(dist_n / std(dist) / 0.3)^2)
    (sample std, N - 1), which sums to 1.01; the masks are propagated
    ``num_iter`` times (each value becomes the affinity-weighted sum of its
    neighbours). ``renormalize=True`` divides the affinity by 1.01 (the
    argmax is the same either way).

    Args:
        images: (B, 3, H, W) images (any intensity scale; the reference
            passes 0-255 RGB).
        masks: (B, K, h, w) maps to refine.

    Returns:
        (B, K, H, W).
    """
    B, _, H, W = images.shape
    dilations = tuple(int(d) for d in dilations)
    masks = F.interpolate(masks, size=(H, W), mode='bilinear',
                          align_corners=True)
    nb = _dilated_neighbors(images, dilations)  # (B, 3, N, H, W)
    diff = (nb - images[:, :, None]).abs()
    std = nb.std(dim=2, keepdim=True)
    aff = -(diff / (std + 1e-8) / 0.3) ** 2
    aff = aff.mean(dim=1, keepdim=True).softmax(dim=2)  # (B, 1, N, H, W)
    unit = torch.tensor([math.sqrt(2), 1, math.sqrt(2), 1, 1, math.sqrt(2),
                         1, math.sqrt(2)], dtype=images.dtype,
                        device=images.device)
    dist = torch.cat([unit * d for d in dilations])
    pos = -(dist / (dist.std() + 1e-8) / 0.3) ** 2
    aff = aff + 0.01 * pos.softmax(dim=0)[None, None, :, None, None]
    if renormalize:
        aff = aff / 1.01
    for _ in range(num_iter):
        masks = (_dilated_neighbors(masks, dilations) * aff).sum(2)
    return masks


def normalize_cam(cam: Tensor) -> Tensor:
    """Per image and class min-max normalisation of a (B, C, H, W) map:
    ``(cam - min) / (max - min + 1e-5)`` (the reference subtracts the min,
    then divides by the new max + 1e-5)."""
    cam = cam - cam.amin(dim=(2, 3), keepdim=True)
    return cam / (cam.amax(dim=(2, 3), keepdim=True) + 1e-5)


def cam_to_roi_mask(cam: Tensor, cls_label: Tensor, high_thre: float = 0.7,
                    low_thre: float = 0.25) -> Tensor:
    """(B, K', H, W) CAM -> (B, H, W) int64 ROI codes: 0 where
    v = max_c(label_c * cam_c) <= ``low_thre``, 2 where v >= ``high_thre``,
    1 otherwise (uncertain)."""
    value = (cam * cls_label[:, :, None, None].to(cam.dtype)).amax(dim=1)
    roi = torch.ones_like(value, dtype=torch.long)
    roi[value <= low_thre] = 0
    roi[value >= high_thre] = 2
    return roi


def select_local_crops(roi: Tensor,
                       num_crops: int = 8,
                       crop_size: int = 96,
                       neg_ratio: float = 0.2,
                       generator: Optional[torch.Generator] = None
                       ) -> Tuple[Tensor, Tensor]:
    """Choose the local crops of CTC from an ROI mask.

    Centre candidates are the pixels with ROI code <= 1 inside the inner
    window (a ``crop_size // 2`` margin); when an image has fewer than
    ``num_crops`` of them, every inner pixel is a candidate. ``num_crops``
    candidates are drawn uniformly without replacement (random scores from
    ``generator``, top-k), inner coordinate (i, j) giving the crop
    [i, i + crop_size) x [j, j + crop_size). A crop is negative (flag 0)
    when the sum of the ROI codes inside it / crop_size^2 <= ``neg_ratio``.

    Args:
        roi: (B, H, W) ROI codes from :func:`cam_to_roi_mask`; H, W >
            2 * (crop_size // 2).

    Returns:
        (coords (B, num_crops, 2) int64 top-left corners, flags
        (B, num_crops + 2) float with the two global views first, always 1).
    """
    B, H, W = roi.shape
    m = crop_size // 2
    ih, iw = H - 2 * m, W - 2 * m
    if ih <= 0 or iw <= 0 or ih * iw < num_crops:
        raise ValueError(f'an ROI mask of {H}x{W} has too few inner pixels '
                         f'for {num_crops} crops of {crop_size}')
    inner = roi[:, m:H - m, m:W - m].reshape(B, -1)
    cand = inner <= 1
    few = cand.sum(dim=1, keepdim=True) < num_crops
    cand = cand | few
    scores = torch.rand(inner.shape, generator=generator,
                        device='cpu' if generator is None
                        else generator.device).to(roi.device)
    scores = scores.masked_fill(~cand, -1.0)
    idx = scores.topk(num_crops, dim=1).indices  # (B, n)
    coords = torch.stack([idx // iw, idx % iw], dim=-1)
    # ROI sums inside each crop through an integral image
    integ = F.pad(roi.to(torch.float64).cumsum(1).cumsum(2), [1, 0, 1, 0])
    i0, j0 = coords[..., 0], coords[..., 1]
    i1, j1 = i0 + crop_size, j0 + crop_size
    b = torch.arange(B, device=roi.device)[:, None]
    sums = integ[b, i1, j1] - integ[b, i0, j1] - integ[b, i1, j0] + \
        integ[b, i0, j0]
    local = (sums / (crop_size * crop_size) > neg_ratio).to(torch.float32)
    flags = torch.cat([torch.ones(B, 2, device=roi.device), local], dim=1)
    return coords, flags


def extract_crops(images: Tensor, coords: Tensor, crop_size: int) -> Tensor:
    """(B, C, H, W) images, (B, n, 2) top-left corners -> (n * B, C, s, s)
    crops, view-major (row v * B + b is crop v of image b)."""
    B, C = images.shape[:2]
    ar = torch.arange(crop_size, device=images.device)
    rows = (coords[..., 0, None] + ar).transpose(0, 1)  # (n, B, s)
    cols = (coords[..., 1, None] + ar).transpose(0, 1)
    b = torch.arange(B, device=images.device)[None, :, None, None]
    crops = images[b, :, rows[..., :, None], cols[..., None, :]]
    # advanced indexing puts C last: (n, B, s, s, C)
    return crops.permute(0, 1, 4, 2, 3).reshape(-1, C, crop_size,
                                                 crop_size)


def refine_cams_with_background(images: Tensor,
                                cams: Tensor,
                                cls_label: Tensor,
                                bkg_score: float,
                                down_scale: int = 2,
                                dilations: Sequence[int] = (1, 2, 4, 8, 12,
                                                            24),
                                num_iter: int = 10) -> Tensor:
    """One PAR refinement of CAMs with a constant background channel.

    The image and [bkg_score, cams] are downscaled by ``down_scale``
    (bilinear), the channels of absent classes are dropped (background is
    always kept), a softmax over the kept channels, PAR, bilinear
    upsampling to the input size and arg-max give class ids (0 background,
    c + 1 for CAM channel c). Batched: absent classes are masked out of the
    softmax (probability exactly 0), which equals the reference's per-image
    channel selection.

    Args:
        images: (B, 3, H, W) 0-255 RGB.
        cams: (B, K', H, W) (the reference passes the label-masked CAM).
        cls_label: (B, K') in {0, 1}.

    Returns:
        (B, H, W) int64.
    """
    B, _, H, W = images.shape
    size = (H // down_scale, W // down_scale)
    small = F.interpolate(images, size=size, mode='bilinear',
                          align_corners=False)
    bkg = torch.full_like(cams[:, :1], bkg_score)
    with_bkg = F.interpolate(torch.cat([bkg, cams], dim=1), size=size,
                             mode='bilinear', align_corners=False)
    keep = torch.cat([torch.ones_like(cls_label[:, :1]), cls_label],
                     dim=1) > 0
    # PAR runs on the present channels only: gather them first (stable
    # sort keeps class order), padded to the largest count in the batch
    n_keep = int(keep.sum(dim=1).max())
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
    order = order[:, :n_keep]  # (B, n) channel ids, present ones first
    kept = torch.gather(keep, 1, order)
    with_bkg = torch.gather(
        with_bkg, 1, order[:, :, None, None].expand(-1, -1, *size))
    with_bkg = with_bkg.masked_fill(~kept[:, :, None, None], float('-inf'))
    probs = with_bkg.softmax(dim=1)
    refined = par_refine(small, probs, dilations, num_iter)
    refined = F.interpolate(refined, size=(H, W), mode='bilinear',
                            align_corners=False)
    # padding channels are exactly 0 (never above a present one's value
    # unless everything is 0, where arg-max picks channel 0 = background)
    refined = refined.masked_fill(~kept[:, :, None, None], -1.0)
    return torch.gather(order, 1, refined.argmax(dim=1).flatten(1)).view(
        B, H, W)


def fuse_refined_labels(label_high: Tensor, label_low: Tensor,
                        valid_box: Optional[BoxLike] = None,
                        ignore_index: int = 255) -> Tensor:
    """Fuse the refinements with background 0.7 ("high") and 0.25 ("low"):
    the high label, ``ignore_index`` where it is 0, 0 where both are 0, and
    ``ignore_index`` outside ``valid_box``. (B, H, W) int64."""
    label = label_high.clone()
    label[label_high == 0] = ignore_index
    label[(label_high == 0) & (label_low == 0)] = 0
    if valid_box is not None:
        inside = box_mask(_as_box(valid_box, label.shape[0], label.device),
                          label.shape[-2:])
        label = torch.where(inside, label,
                            torch.full_like(label, ignore_index))
    return label


def balanced_seg_loss(logits: Tensor, label: Tensor,
                      ignore_index: int = 255,
                      faithful: bool = False) -> Tensor:
    """0.5 * (CE over background pixels + CE over foreground pixels).

    Each group's cross entropy is its sum / max(count, 1), so an empty group
    (a crop with no foreground, or no background, or all ignored) adds 0.
    ``faithful=True`` is the reference (``F.cross_entropy`` mean per group:
    NaN when a group is empty); both agree whenever the reference is
    finite.

    Args:
        logits: (B, K, H, W); label: (B, H, W) int64.
    """
    bg = label.masked_fill(label != 0, ignore_index)
    fg = label.masked_fill(label == 0, ignore_index)
    if faithful:
        return 0.5 * (F.cross_entropy(logits, bg, ignore_index=ignore_index)
                      + F.cross_entropy(logits, fg,
                                        ignore_index=ignore_index))
    out = logits.new_zeros(())
    for target in (bg, fg):
        ce = F.cross_entropy(logits, target, ignore_index=ignore_index,
                             reduction='sum')
        out = out + ce / (target != ignore_index).sum().clamp(min=1)
    return 0.5 * out


def token_box(valid_box: BoxLike, patch_size: int,
              grid: Tuple[int, int]) -> Tensor:
    """Pixel boxes [h0, h1, w0, w1] -> token boxes on an (h, w) grid: a
    token is inside when its patch centre is. (B, 4) int64."""
    box = torch.as_tensor(valid_box, dtype=torch.float64)
    p = float(patch_size)
    t = torch.ceil((box - p / 2) / p).clamp(min=0)
    lim = torch.tensor([grid[0], grid[0], grid[1], grid[1]],
                       dtype=torch.float64)
    return torch.minimum(t, lim).long()


def labels_from_mask(mask: Tensor, num_classes: int,
                     ignore_index: int = 255) -> Tensor:
    """(B, H, W) class-id masks (0 background, 1..K', ``ignore_index``)
    -> (B, K') float image-level labels (1 where the class is present)."""
    B = mask.shape[0]
    flat = mask.reshape(B, -1).long()
    flat = torch.where((flat >= 1) & (flat < num_classes) &
                       (flat != ignore_index), flat, torch.zeros_like(flat))
    onehot = torch.zeros(B, num_classes, device=mask.device)
    onehot.scatter_(1, flat, 1.0)
    return onehot[:, 1:]
