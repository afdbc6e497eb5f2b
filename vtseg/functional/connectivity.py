"""Pixel-pair connectivity (ConnNet / BiconNet / DconnNet): labels, bilateral
voting, edges, losses and the instance split.

Layout (docs/methods/connectivity.md#labels). For a mask ``m`` of K classes
and dilations ``(d_0, ..., d_{J-1})`` the connectivity map has ``K * 8 * J``
channels; channel ``(k * J + j) * 8 + d`` holds
``m_k(p) * m_k(p + d_j * o_d)`` with the 8 offsets ``o_d = (dy, dx)`` in
raster order over the 3x3 window, centre skipped (y points down)::

    d :    0        1       2        3       4       5        6       7
    o_d: (-1,-1) (-1, 0) (-1,+1) ( 0,-1) ( 0,+1) (+1,-1) (+1, 0) (+1,+1)

Channels ``d`` and ``7 - d`` are opposite directions; pixels outside the
image count as 0.

Bilateral voting
(docs/methods/connectivity.md#bilateral-voting-and-decoding):
``v_d(p) = C_d(p) * C_{7-d}(p + o_d)`` (0 where ``p + o_d`` is outside),
i.e. a link survives only when both ends agree; the decoded map is
``max_d v_d``. Shifts are done by slicing with zero fill, so any (H, W) and
batch size work on any device; the references multiply by dense 0/1
translation matrices fixed to one image size, which gives the same numbers
(a product with exactly one 1 per row is exact in floating point).

Degenerate inputs (documented behaviour, tested):
- empty mask: all links 0, voted map 0, edge map 0; every loss is finite.
- image smaller than a dilation (H or W <= d): every link at that dilation
  leaves the image and is 0; a 1x1 image has no links at all.
- isolated foreground pixels (no foreground neighbour at any dilation) have
  no link, so voting drops them (the round trip returns the mask otherwise).
- non-binary masks and connectivity maps whose channel count is not a
  multiple of ``8 * len(dilations)`` raise ``ValueError``.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torch import Tensor

__all__ = [
    'CONNECTIVITY_OFFSETS', 'connectivity_offsets', 'mask_to_connectivity',
    'instance_to_connectivity', 'connectivity_votes', 'bilateral_voting',
    'connectivity_edge', 'connectivity_decode', 'bce_on_probs',
    'soft_dice_loss', 'connectivity_edge_loss', 'connectivity_loss_terms',
    'bicon_loss', 'dconn_loss', 'BICON_WEIGHTS', 'DCONN_WEIGHTS',
    'split_instances'
]

#: The 8 offsets (dy, dx), raster order over the 3x3 window, centre skipped.
CONNECTIVITY_OFFSETS: Tuple[Tuple[int, int], ...] = ((-1, -1), (-1, 0),
                                                     (-1, 1), (0, -1), (0, 1),
                                                     (1, -1), (1, 0), (1, 1))

#: Default term weights of the BiconNet loss
#: (docs/methods/connectivity.md#losses).
BICON_WEIGHTS = dict(conn=0.8, vote=0.2, bce=1.0, dice=1.0, edge=1.0)
#: Default term weights of the DconnNet loss
#: (docs/methods/connectivity.md#losses).
DCONN_WEIGHTS = dict(conn=1.0, vote=0.2, bce=1.0, dice=1.0, edge=1.0)


def _check_dilations(dilations: Sequence[int]) -> Tuple[int, ...]:
    if isinstance(dilations, int):
        dilations = (dilations, )
    dilations = tuple(dilations)
    if len(dilations) == 0 or any(
            not isinstance(d, (int, np.integer)) or d < 1 for d in dilations):
        raise ValueError('dilations must be a non-empty sequence of positive '
                         f'ints, got {dilations!r}')
    return tuple(int(d) for d in dilations)


def connectivity_offsets(
        dilations: Sequence[int] = (1, )) -> List[Tuple[int, int]]:
    """Offsets (dy, dx) of every link channel of one class, in channel order
    ``j * 8 + d`` (dilation-major), i.e. ``dilations[j] * o_d``."""
    dilations = _check_dilations(dilations)
    return [(d * dy, d * dx) for d in dilations
            for dy, dx in CONNECTIVITY_OFFSETS]


def _regions(H: int, W: int, dy: int, dx: int):
    """Slices (dst, src) such that ``out[dst] = x[src]`` realises
    ``out(p) = x(p + (dy, dx))``; None when the shift leaves the image."""
    if abs(dy) >= H or abs(dx) >= W:
        return None
    dst = (slice(max(0, -dy), H - max(0, dy)), slice(max(0, -dx),
                                                     W - max(0, dx)))
    src = (slice(max(0, dy), H - max(0, -dy)), slice(max(0, dx),
                                                     W - max(0, -dx)))
    return dst, src


def _shift(x: Tensor, dy: int, dx: int, fill: float = 0.0) -> Tensor:
    """``out(p) = x(p + (dy, dx))`` over the last two axes, ``fill``
    outside the image."""
    H, W = x.shape[-2:]
    out = torch.full_like(x, fill)
    reg = _regions(H, W, dy, dx)
    if reg is not None:
        (dr, dc), (sr, sc) = reg
        out[..., dr, dc] = x[..., sr, sc]
    return out


def _check_4d(x: Tensor, name: str, layout: str):
    if not isinstance(x, Tensor):
        raise TypeError(f'{name} must be a torch.Tensor {layout}, got '
                        f'{type(x).__name__}')
    if x.dim() != 4:
        raise ValueError(f'{name} must be {layout}, got shape '
                         f'{tuple(x.shape)}')


def _check_binary(mask: Tensor, name: str = 'mask'):
    if mask.dtype == torch.bool:
        return
    bad = (mask != 0) & (mask != 1)
    if bool(bad.any()):
        vals = torch.unique(mask[bad])[:5].tolist()
        raise ValueError(f'{name} must be binary (values in {{0, 1}}), found '
                         f'other values such as {vals}; threshold soft masks '
                         'and map ignore labels (e.g. 255) out first')


def _out_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.float32


def mask_to_connectivity(mask: Tensor,
                         dilations: Sequence[int] = (1, )) -> Tensor:
    """Connectivity labels of a binary mask
    (docs/methods/connectivity.md#labels).

    Args:
        mask: (B, K, H, W) in {0, 1} (bool, int or float); one channel per
            class (one-hot with background as class 0 for multi-class).
        dilations: link distances; (1,) is the 8-neighbourhood.

    Returns:
        (B, K * 8 * len(dilations), H, W), float (the mask's dtype if
        floating, else float32); channel ``(k * J + j) * 8 + d`` holds
        ``mask[k](p) * mask[k](p + dilations[j] * o_d)``, 0 outside.

    Raises:
        ValueError: mask not 4-D or not binary; invalid dilations.
    """
    dilations = _check_dilations(dilations)
    _check_4d(mask, 'mask', '(B, K, H, W)')
    _check_binary(mask)
    m = mask.to(_out_dtype(mask))
    B, K, H, W = m.shape
    out = m.new_zeros(B, K, len(dilations) * 8, H, W)
    for c, (dy, dx) in enumerate(connectivity_offsets(dilations)):
        reg = _regions(H, W, dy, dx)
        if reg is None:
            continue
        (dr, dc), (sr, sc) = reg
        out[:, :, c, dr, dc] = m[:, :, dr, dc] * m[:, :, sr, sc]
    return out.reshape(B, K * len(dilations) * 8, H, W)


def instance_to_connectivity(instance_map: Tensor,
                             dilations: Sequence[int] = (1, ),
                             ignore_index: Optional[int] = None) -> Tensor:
    """Instance-aware links: ``p`` and ``p + o`` are linked when they carry
    the same instance id > 0, so touching instances are not connected.

    Args:
        instance_map: (B, 1, H, W) or (B, H, W) integer ids, 0 = background.
        dilations: link distances.
        ignore_index: id treated as background (e.g. 255); None: none.

    Returns:
        (B, 8 * len(dilations), H, W) float32 in {0, 1}, same layout as
        :func:`mask_to_connectivity` with K = 1.
    """
    dilations = _check_dilations(dilations)
    if instance_map.dim() == 3:
        instance_map = instance_map[:, None]
    _check_4d(instance_map, 'instance_map', '(B, 1, H, W)')
    if instance_map.shape[1] != 1:
        raise ValueError('instance_map must have one channel, got shape '
                         f'{tuple(instance_map.shape)}')
    ids = instance_map.long()
    if ignore_index is not None:
        ids = ids.masked_fill(ids == ignore_index, 0)
    B, _, H, W = ids.shape
    out = torch.zeros(B, len(dilations) * 8, H, W, device=ids.device)
    for c, (dy, dx) in enumerate(connectivity_offsets(dilations)):
        reg = _regions(H, W, dy, dx)
        if reg is None:
            continue
        (dr, dc), (sr, sc) = reg
        a, b = ids[:, 0, dr, dc], ids[:, 0, sr, sc]
        out[:, c, dr, dc] = ((a == b) & (a > 0)).float()
    return out


def _split_conn(conn: Tensor, dilations: Tuple[int, ...],
                name: str = 'conn') -> Tuple[Tensor, int]:
    """(B, K*8*J, H, W) -> ((B, K, J, 8, H, W), K), with a clear error."""
    _check_4d(conn, name, '(B, K * 8 * len(dilations), H, W)')
    B, C, H, W = conn.shape
    per_class = 8 * len(dilations)
    if C == 0 or C % per_class:
        raise ValueError(
            f'{name} has {C} channels; expected a positive multiple of '
            f'8 * len(dilations) = {per_class} (dilations={dilations}): '
            'K classes x len(dilations) x 8 directions')
    K = C // per_class
    return conn.reshape(B, K, len(dilations), 8, H, W), K


def connectivity_votes(conn: Tensor,
                       dilations: Sequence[int] = (1, )) -> Tensor:
    """Per-direction bilateral votes
    (docs/methods/connectivity.md#bilateral-voting-and-decoding).

    Args:
        conn: (B, K * 8 * J, H, W) link scores (probabilities, or raw logits
            for DconnNet's multi-class decode).
        dilations: the J link distances the channels were built with.

    Returns:
        (B, K * 8 * J, H, W), same layout: channel ``(k * J + j) * 8 + d``
        holds ``conn_d(p) * conn_{7-d}(p + dilations[j] * o_d)``, 0 where
        that neighbour is outside the image.
    """
    dilations = _check_dilations(dilations)
    c6, _ = _split_conn(conn, dilations)
    # Autograd-friendly layout: the opposite channels (7 - d) are padded
    # once per dilation and unbound, so each shifted map is a slice of its
    # own padded channel (slice / select on the full tensor would allocate
    # a full-size zero gradient per direction in backward).
    opposite = c6.flip(3)
    H, W = c6.shape[-2:]
    per_dil = []
    for j, dil in enumerate(dilations):
        padded = F.pad(opposite[:, :, j], (dil, dil, dil, dil))
        chans = padded.unbind(2)
        shifted = torch.stack([
            chans[d][..., dil * (1 + dy):dil * (1 + dy) + H,
                     dil * (1 + dx):dil * (1 + dx) + W]
            for d, (dy, dx) in enumerate(CONNECTIVITY_OFFSETS)
        ], 2)
        per_dil.append(c6[:, :, j] * shifted)
    return torch.stack(per_dil, 2).reshape(conn.shape)


def bilateral_voting(conn: Tensor, dilations: Sequence[int] = (1, )) -> Tensor:
    """Decode connectivity by bilateral voting: max over directions (and
    dilations) of :func:`connectivity_votes`.

    Args:
        conn: (B, K * 8 * J, H, W) link scores.
        dilations: the J link distances.

    Returns:
        (B, K, H, W) voted map (continuous for probabilities; exactly the
        mask minus isolated pixels for exact labels).

    Without autograd this is a running maximum, so the 8 * J vote maps are
    never held at once; with autograd it is the maximum of
    :func:`connectivity_votes` (gradient to the winning direction).
    """
    dilations = _check_dilations(dilations)
    c6, K = _split_conn(conn, dilations)
    B, K, J, _, H, W = c6.shape
    if torch.is_grad_enabled() and conn.requires_grad:
        return connectivity_votes(conn, dilations).reshape(
            B, K, J * 8, H, W).amax(2)
    out = None
    for j, dil in enumerate(dilations):
        for d, (dy, dx) in enumerate(CONNECTIVITY_OFFSETS):
            vote = c6.new_zeros(B, K, H, W)
            reg = _regions(H, W, dil * dy, dil * dx)
            if reg is not None:
                (dr, dc), (sr, sc) = reg
                vote[:, :, dr, dc] = (c6[:, :, j, d, dr, dc] *
                                      c6[:, :, j, 7 - d, sr, sc])
            if out is None:
                out = vote
            else:
                torch.maximum(out, vote, out=out)
    return out


def connectivity_edge(conn: Tensor,
                      dilations: Sequence[int] = (1, )) -> Tensor:
    """Edge map E of connectivity labels
    (docs/methods/connectivity.md#losses): 1 where a pixel has some but not
    all of its links, computed per class.

    With J dilations a pixel counts all ``8 * J`` links, so the band is as
    wide as the largest dilation (for J = 1 this is the inner boundary:
    foreground pixels with a background or out-of-image neighbour; isolated
    pixels have no link and are not edges).

    Args:
        conn: (B, K * 8 * J, H, W) labels in {0, 1}.
        dilations: the J link distances.

    Returns:
        (B, K, H, W) float in {0, 1}.
    """
    dilations = _check_dilations(dilations)
    c6, K = _split_conn(conn, dilations)
    n = c6.sum(dim=(2, 3))
    full = 8 * len(dilations)
    return ((n > 0) & (n < full)).to(_out_dtype(conn))


def connectivity_decode(conn_logits: Tensor,
                        dilations: Sequence[int] = (1, ),
                        mode: str = 'soft',
                        threshold: float = 0.5) -> Tensor:
    """Test-time decode of connectivity logits
    (docs/methods/connectivity.md#bilateral-voting-and-decoding).

    Args:
        conn_logits: (B, K * 8 * J, H, W) raw logits.
        dilations: the J link distances.
        mode: ``'soft'`` (BiconNet saliency): sigmoid, then vote, giving a
            continuous map in [0, 1]; ``'binary'`` (DconnNet, one class):
            sigmoid, threshold, vote, giving {0, 1}; ``'multiclass'``
            (DconnNet): vote on the raw logits, giving (B, K, H, W) voted
            logits to softmax / argmax over classes (two negative logits
            multiply to a positive vote: a reference hazard kept on purpose);
            ``'multiclass_probs'``: vote on sigmoid probabilities instead.
        threshold: link threshold of ``'binary'``.

    Returns:
        (B, K, H, W).
    """
    if mode == 'soft':
        return bilateral_voting(conn_logits.sigmoid(), dilations)
    if mode == 'binary':
        return bilateral_voting((conn_logits.sigmoid() > threshold).to(
            _out_dtype(conn_logits)), dilations)
    if mode == 'multiclass':
        return bilateral_voting(conn_logits, dilations)
    if mode == 'multiclass_probs':
        return bilateral_voting(conn_logits.sigmoid(), dilations)
    raise ValueError("mode must be 'soft', 'binary', 'multiclass' or "
                     f"'multiclass_probs', got {mode!r}")


# --------------------------------------------------------------------- losses
def bce_on_probs(prob: Tensor, target: Tensor,
                 weight: Optional[Tensor] = None,
                 reduction: str = 'mean') -> Tensor:
    """PyTorch's BCE on probabilities (logs clamped at -100), in fp32 with
    autocast off (BCE on probabilities is unsafe in fp16).

    Args:
        prob: any shape, values in [0, 1].
        target: same shape, values in [0, 1].
        weight: optional, broadcastable to ``prob``; ``'mean'`` then means
            ``sum(w * l) / max(sum(w), eps)`` (a plain mean when w = 1).
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
    """
    with torch.autocast(device_type=prob.device.type, enabled=False):
        loss = F.binary_cross_entropy(prob.float(), target.float(),
                                      reduction='none')
        if weight is not None:
            weight = weight.float().expand_as(loss)
            loss = loss * weight
        if reduction == 'none':
            return loss
        if reduction == 'sum':
            return loss.sum()
        if weight is None:
            return loss.mean()
        return loss.sum() / weight.sum().clamp_min(1e-12)


def soft_dice_loss(pred: Tensor, target: Tensor, smooth: float = 1e-3,
                   per: str = 'image') -> Tensor:
    """``1 - (2 sum(pred * target) + s) / (sum(target) + sum(pred) + s)``,
    averaged over the groups selected by ``per``.

    Args:
        pred: (B, K, H, W) in [0, 1].
        target: (B, K, H, W) in [0, 1].
        smooth: s (BiconNet 1e-3, DconnNet 1e-4).
        per: ``'image'``: one Dice per image and class, sums over (H, W)
            (vtseg default); ``'column'``: sums over (K, H), one Dice per
            image column (the BiconNet reference, faithful mode).
    """
    pred, target = pred.float(), target.float()
    if per == 'image':
        dims = (2, 3)
    elif per == 'column':
        dims = (1, 2)
    else:
        raise ValueError(f"per must be 'image' or 'column', got {per!r}")
    inter = (pred * target).sum(dims)
    score = (2 * inter + smooth) / (target.sum(dims) + pred.sum(dims) +
                                    smooth)
    return (1 - score).mean()


def connectivity_edge_loss(votes: Tensor, edge: Tensor,
                           dilations: Sequence[int] = (1, ),
                           normalize: str = 'all',
                           weight: Optional[Tensor] = None) -> Tensor:
    """Edge (decoupling) term: BCE(min_d V_d * E, 0), pushing the weakest
    vote of every edge pixel to 0.

    Args:
        votes: (B, K * 8 * J, H, W) votes in [0, 1].
        edge: (B, K, H, W) edge map (:func:`connectivity_edge`).
        dilations: the J link distances.
        normalize: ``'all'``: mean over all B * K * H * W pixels (BiconNet);
            ``'edge'``: sum / max(#edge pixels, 1) (vtseg default for
            DconnNet); ``'pred'``: sum / sum(min_d V_d * E), the DconnNet
            reference (faithful; NaN when that mass is 0).
        weight: optional (B, K, H, W) pixel weights (ignore handling).
    """
    dilations = _check_dilations(dilations)
    v6, K = _split_conn(votes, dilations, 'votes')
    vmin = v6.flatten(2, 3).amin(dim=2) * edge
    loss = bce_on_probs(vmin, torch.zeros_like(vmin), weight, 'none')
    if normalize == 'all':
        if weight is None:
            return loss.mean()
        return loss.sum() / weight.float().sum().clamp_min(1.0)
    if normalize == 'edge':
        e = edge if weight is None else edge * weight
        return loss.sum() / e.float().sum().clamp_min(1.0)
    if normalize == 'pred':
        return loss.sum() / vmin.float().sum()
    raise ValueError("normalize must be 'all', 'edge' or 'pred', got "
                     f'{normalize!r}')


def _link_weight(valid: Tensor, dilations: Tuple[int, ...],
                 K: int) -> Tensor:
    """(B, 1, H, W) pixel validity -> (B, K*8*J, H, W) link weights: a link
    counts only when both of its pixels are valid (outside counts as valid:
    those links are true zeros)."""
    v = valid.float()
    chans = [v * _shift(v, dy, dx, fill=1.0)
             for dy, dx in connectivity_offsets(dilations)]
    w = torch.cat(chans, dim=1)  # (B, 8J, H, W)
    return w.repeat(1, K, 1, 1)


def connectivity_loss_terms(conn_logits: Tensor,
                            target: Tensor,
                            variant: str = 'bicon',
                            dilations: Sequence[int] = (1, ),
                            conn_target: Optional[Tensor] = None,
                            ignore_index: Optional[int] = 255,
                            faithful: bool = False) -> Dict[str, Tensor]:
    """Unweighted loss terms of the connectivity methods
    (docs/methods/connectivity.md#losses).

    One-class / multi-label form (``variant='bicon'`` or ``'dconn'``):

    - ``conn``: BCE(P, conn), P = sigmoid(logits);
    - ``vote``: BCE(V, conn), V = votes of P;
    - ``bce``: BCE(F, m), F = max_d V_d (the decoded map);
    - ``dice``: soft Dice(F, m), smooth 1e-3 (bicon) / 1e-4 (dconn), per
      image; faithful bicon: per image column;
    - ``edge``: BCE(min_d V_d * E, 0), normalised over all pixels (bicon) or
      over edge pixels (dconn; faithful: over the predicted edge mass).

    Multi-class DconnNet (``variant='dconn_multiclass'``, K classes with
    background as class 0): ``ce`` = CE(F_raw, y) on votes of the raw
    logits, ``conn`` = BCE(sigmoid(C), conn), ``edge`` on sigmoid(V_raw),
    ``vote`` = BCE(votes of sigmoid(C), conn) and ``dice`` = sum over
    foreground classes of Dice(softmax(F_raw)_j, onehot_j).

    Args:
        conn_logits: (B, K * 8 * J, H, W) raw logits at label size.
        target: one-class / multi-label: (B, K, H, W) or (B, H, W) (K = 1)
            mask in {0, 1} with optional ``ignore_index`` pixels;
            multi-class: (B, H, W) or (B, 1, H, W) class indices.
        variant: ``'bicon'``, ``'dconn'`` or ``'dconn_multiclass'``.
        dilations: the J link distances.
        conn_target: optional (B, K * 8 * J, H, W) link labels replacing
            the ones derived from ``target`` (e.g. instance-aware links from
            :func:`instance_to_connectivity`); the mask terms still use
            ``target``.
        ignore_index: label of pixels to ignore (vtseg extension: every link
            touching one gets weight 0); None: none.
        faithful: reproduce the reference quirks (bicon per-column Dice,
            dconn edge normaliser).

    Returns:
        dict of scalar tensors: conn, vote, edge, dice and bce (or ce).
    """
    dilations = _check_dilations(dilations)
    if variant not in ('bicon', 'dconn', 'dconn_multiclass'):
        raise ValueError("variant must be 'bicon', 'dconn' or "
                         f"'dconn_multiclass', got {variant!r}")
    _, K = _split_conn(conn_logits, dilations, 'conn_logits')
    if target.dim() == 3:
        target = target[:, None]
    if target.dim() != 4:
        raise ValueError('target must be (B, H, W) or (B, K, H, W), got '
                         f'shape {tuple(target.shape)}')
    if target.shape[-2:] != conn_logits.shape[-2:] or \
            target.shape[0] != conn_logits.shape[0]:
        raise ValueError(f'target shape {tuple(target.shape)} does not match '
                         f'conn_logits {tuple(conn_logits.shape)} in batch / '
                         'size; upsample the logits to label size first')
    logits = conn_logits.float()
    valid = None
    if ignore_index is not None:
        ign = target == ignore_index
        if bool(ign.any()):
            valid = (~ign).all(dim=1, keepdim=True)
        target = target.masked_fill(ign, 0)

    if variant == 'dconn_multiclass':
        if target.shape[1] != 1:
            raise ValueError('dconn_multiclass target must hold class '
                             'indices (B, 1, H, W), got '
                             f'{tuple(target.shape)}')
        labels = target[:, 0].long()
        if bool((labels < 0).any()) or bool((labels >= K).any()):
            raise ValueError(f'class indices must lie in [0, {K}) (or be '
                             f'ignore_index={ignore_index})')
        mask = F.one_hot(labels, K).permute(0, 3, 1, 2).float()
    else:
        if target.shape[1] != K:
            raise ValueError(f'target has {target.shape[1]} channels but '
                             f'conn_logits encode K={K} classes')
        _check_binary(target, 'target')
        mask = target.float()

    conn = mask_to_connectivity(mask, dilations) if conn_target is None \
        else conn_target.float()
    if conn.shape != logits.shape:
        raise ValueError(f'conn_target shape {tuple(conn.shape)} != '
                         f'conn_logits shape {tuple(logits.shape)}')
    edge = connectivity_edge(conn, dilations)
    pix_w = None if valid is None else valid.float().expand_as(mask)
    link_w = None if valid is None else _link_weight(valid, dilations, K)
    edge_w = None
    if link_w is not None:  # an edge pixel counts if all its links count
        edge_w = _split_conn(link_w, dilations)[0].flatten(2, 3).amin(2)

    prob = logits.sigmoid()
    votes = connectivity_votes(prob, dilations)
    terms = dict(conn=bce_on_probs(prob, conn, link_w),
                 vote=bce_on_probs(votes, conn, link_w))
    if variant == 'dconn_multiclass':
        raw_votes = connectivity_votes(logits, dilations)
        final_raw = _split_conn(raw_votes, dilations)[0].flatten(2, 3).amax(2)
        ce_target = labels if valid is None else labels.masked_fill(
            ~valid[:, 0], -100)
        if bool((ce_target != -100).any()):
            terms['ce'] = F.cross_entropy(final_raw, ce_target,
                                          ignore_index=-100)
        else:  # every pixel ignored: CE would be NaN
            terms['ce'] = final_raw.sum() * 0
        terms['edge'] = connectivity_edge_loss(
            raw_votes.sigmoid(), edge, dilations,
            'pred' if faithful else 'edge', edge_w)
        soft = final_raw.softmax(dim=1)
        if pix_w is not None:
            soft, mask = soft * pix_w, mask * pix_w
        dice = final_raw.new_zeros(())
        for j in range(1, K):
            dice = dice + soft_dice_loss(soft[:, j:j + 1], mask[:, j:j + 1],
                                         1e-4)
        terms['dice'] = dice
        return terms

    final = _split_conn(votes, dilations)[0].flatten(2, 3).amax(2)
    terms['bce'] = bce_on_probs(final, mask, pix_w)
    f_d, m_d = (final, mask) if pix_w is None else (final * pix_w,
                                                     mask * pix_w)
    if variant == 'bicon':
        terms['dice'] = soft_dice_loss(f_d, m_d, 1e-3,
                                       'column' if faithful else 'image')
        terms['edge'] = connectivity_edge_loss(votes, edge, dilations, 'all',
                                               edge_w)
    else:
        terms['dice'] = soft_dice_loss(f_d, m_d, 1e-4, 'image')
        terms['edge'] = connectivity_edge_loss(
            votes, edge, dilations, 'pred' if faithful else 'edge', edge_w)
    return terms


def _weighted_sum(terms: Dict[str, Tensor], weights: Dict[str, float],
                  defaults: Dict[str, float]) -> Tensor:
    w = dict(defaults)
    w.update(weights or {})
    w.setdefault('ce', w.get('bce', 1.0))
    return sum(w[k] * v for k, v in terms.items())


def bicon_loss(conn_logits: Tensor, target: Tensor,
               dilations: Sequence[int] = (1, ),
               weights: Optional[Dict[str, float]] = None,
               faithful: bool = False, **kwargs) -> Tensor:
    """BiconNet loss (docs/methods/connectivity.md#losses):
    ``0.8 BCE(P, conn) + L_edge + 0.2 BCE(V, conn) + BCE(F, m) + Dice(F, m)``.

    Args:
        conn_logits: (B, K * 8 * J, H, W) raw logits at label size.
        target: (B, K, H, W) or (B, H, W) binary mask.
        weights: overrides of :data:`BICON_WEIGHTS`.
        faithful: per-column Dice as in the reference.
        **kwargs: ``conn_target``, ``ignore_index`` of
            :func:`connectivity_loss_terms`.

    Returns:
        scalar tensor.
    """
    terms = connectivity_loss_terms(conn_logits, target, 'bicon', dilations,
                                    faithful=faithful, **kwargs)
    return _weighted_sum(terms, weights, BICON_WEIGHTS)


def dconn_loss(conn_logits: Tensor, target: Tensor,
               dilations: Sequence[int] = (1, ),
               multiclass: bool = False,
               bicon_term: bool = True,
               dice_term: bool = True,
               weights: Optional[Dict[str, float]] = None,
               faithful: bool = False, **kwargs) -> Tensor:
    """DconnNet loss (docs/methods/connectivity.md#losses):
    ``BCE(F, m) + BCE(P, conn) + L_edge' + Dice(F, m) + 0.2 BCE(V, conn)``
    (one class), or its multi-class form with CE on voted raw logits.

    Args:
        conn_logits: (B, K * 8 * J, H, W) raw logits at label size.
        target: binary mask (one class) or class indices (multi-class).
        multiclass: use the multi-class form.
        bicon_term / dice_term: drop the 0.2 BCE(V, conn) / Dice terms (the
            CHASEDB1 preset drops the former).
        weights: overrides of :data:`DCONN_WEIGHTS`.
        faithful: the reference edge normaliser (predicted edge mass).
        **kwargs: ``conn_target``, ``ignore_index``.

    Returns:
        scalar tensor.
    """
    terms = connectivity_loss_terms(
        conn_logits, target, 'dconn_multiclass' if multiclass else 'dconn',
        dilations, faithful=faithful, **kwargs)
    if not bicon_term:
        terms.pop('vote')
    if not dice_term:
        terms.pop('dice')
    return _weighted_sum(terms, weights, DCONN_WEIGHTS)


# ----------------------------------------------------------- instance split
def split_instances(conn_prob: Tensor,
                    fg_threshold: float = 0.5,
                    link_threshold: Optional[float] = None,
                    min_area: int = 0,
                    fill_unassigned: bool = True
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """Split the decoded foreground of one image into instances from the
    connectivity graph.

    Rule (documented, tested):

    1. votes ``v_d(p) = P_d(p) P_{7-d}(p + o_d)`` at dilation 1; the
       foreground is ``max_d v_d > fg_threshold`` (the soft decode).
    2. a link between two foreground pixels is *confirmed* when its vote
       exceeds ``link_threshold`` (default ``fg_threshold``): both ends must
       agree. Instances are the connected components of the graph of
       confirmed links (scipy ``connected_components``).
    3. touching objects: two objects that touch are separated exactly when
       no confirmed link crosses their common border. A stricter
       ``link_threshold`` cuts weak bridges; foreground pixels then left in
       components smaller than ``min_area`` (or with no confirmed link) are
       given to the nearest kept instance (Euclidean distance transform) when
       ``fill_unassigned``, else dropped. Components are numbered in raster
       order of their first pixel.

    Args:
        conn_prob: (8 * J, H, W) or (1, 8 * J, H, W) link probabilities of
            one class (dilation-1 channels come first, J >= 1).

    Returns:
        (labels, scores): labels (H, W) int32, 0 = background, 1..n
        instances; scores (n,) float32, the mean decoded map over each
        instance.
    """
    if conn_prob.dim() == 4:
        if conn_prob.shape[0] != 1:
            raise ValueError('split_instances takes one image, got batch '
                             f'{conn_prob.shape[0]}')
        conn_prob = conn_prob[0]
    if conn_prob.dim() != 3 or conn_prob.shape[0] % 8:
        raise ValueError('conn_prob must be (8 * J, H, W), got shape '
                         f'{tuple(conn_prob.shape)}')
    if link_threshold is None:
        link_threshold = fg_threshold
    p8 = conn_prob[:8].float()[None]
    H, W = p8.shape[-2:]
    votes = connectivity_votes(p8)[0]  # (8, H, W)
    fmap = votes.amax(0)
    fg = (fmap > fg_threshold).cpu().numpy()
    v = votes.cpu().numpy()
    idx = np.arange(H * W).reshape(H, W)
    rows, cols = [], []
    # Votes are symmetric (v_d(p) = v_{7-d}(p + o_d)), so the 4 "forward"
    # directions describe every link once.
    for d in (4, 5, 6, 7):
        dy, dx = CONNECTIVITY_OFFSETS[d]
        reg = _regions(H, W, dy, dx)
        if reg is None:
            continue
        (dr, dc), (sr, sc) = reg
        ok = (v[d][dr, dc] > link_threshold) & fg[dr, dc] & fg[sr, sc]
        rows.append(idx[dr, dc][ok])
        cols.append(idx[sr, sc][ok])
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)),
                       shape=(H * W, H * W))
    _, comp = connected_components(graph, directed=False)
    comp = comp.reshape(H, W)
    labels = np.zeros((H, W), np.int32)
    if fg.any():
        fg_comp = comp[fg]
        uniq, first, counts = np.unique(fg_comp, return_index=True,
                                        return_counts=True)
        # singletons have no confirmed link, so they are never instances
        keep = counts >= max(min_area, 2)
        order = np.argsort(first[keep])
        new_id = np.zeros(comp.max() + 1, np.int32)
        new_id[uniq[keep][order]] = np.arange(1, keep.sum() + 1)
        labels[fg] = new_id[fg_comp]
        if fill_unassigned and keep.any():
            orphan = fg & (labels == 0)
            if orphan.any():
                _, (iy, ix) = ndimage.distance_transform_edt(
                    labels == 0, return_indices=True)
                labels[orphan] = labels[iy[orphan], ix[orphan]]
    n = int(labels.max())
    f = fmap.cpu().numpy()
    scores = np.asarray(
        ndimage.mean(f, labels, index=np.arange(1, n + 1)) if n else [],
        dtype=np.float32)
    return labels, scores
