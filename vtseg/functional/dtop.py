"""Dynamic token pruning (DToP, ICCV 2023): the pruning rule, the logit
canvas and the ATM head's probability formula as plain functions
(docs/methods/dtop.md, docs/dtop.md).

The ViT is split into stages; after each stage an auxiliary head grades the
active tokens. A token whose highest class confidence is above a threshold
is *finalised*: its logits are frozen in a (B, K, N) canvas and it leaves
every later block. The final prediction combines the final head's output
for the tokens still active with the frozen logits of the others.
"""
from typing import Optional

import torch
from torch import Tensor

__all__ = ['dtop_prune_mask', 'write_canvas', 'atm_class_probs']


def dtop_prune_mask(scores: Tensor, thresh: float, topk: int = 5) -> Tensor:
    """Which active tokens a DToP stage prunes.

    A token is pruned when its highest class confidence is strictly above
    ``thresh``, except that, for every class that is the arg-max of some
    such candidate, the ``topk`` most confident candidates of that class
    stay active (they keep that class represented in later blocks). Ties
    are broken as ``torch.topk`` on the (B, K, N) per-class candidate
    scores (other tokens at -inf) breaks them. ``thresh >= 1`` prunes
    nothing. Batched: no loop over images or classes.

    Args:
        scores: (B, K, N) per-class confidences in [0, 1] of the active
            tokens (give padding / inactive tokens score 0: with
            ``thresh >= 0`` they are never candidates).
        thresh: confidence threshold.
        topk: candidates kept per class (the reference's hard-coded 5).

    Returns:
        (B, N) bool, True for the tokens to prune.
    """
    if scores.dim() != 3:
        raise ValueError('scores must be (B, K, N), got shape '
                         f'{tuple(scores.shape)}')
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 0:
        raise ValueError(f'topk must be an int >= 0, got {topk!r}')
    B, K, N = scores.shape
    if thresh >= 1 or N == 0:
        return torch.zeros(B, N, dtype=torch.bool, device=scores.device)
    value, cls = scores.max(dim=1)  # (B, N)
    prune = value > thresh
    k = min(topk, N)
    if k == 0 or not bool(prune.any()):
        return prune
    # per-class candidate scores, -inf elsewhere: (B, K, N)
    own = torch.nn.functional.one_hot(cls, K).transpose(1, 2).bool()
    per_class = torch.where(own & prune[:, None, :], value[:, None, :],
                            value.new_tensor(float('-inf')))
    top_val, top_idx = per_class.topk(k, dim=2)  # (B, K, k)
    # count real (finite) top-k entries per token: non-candidate slots
    # (-inf, classes with fewer than k candidates) add 0
    kept = torch.zeros(B, N, dtype=torch.int32, device=scores.device)
    kept.scatter_add_(1, top_idx.flatten(1),
                      torch.isfinite(top_val).flatten(1).to(torch.int32))
    keep = kept > 0
    return prune & ~keep


def write_canvas(canvas: Tensor, logits: Tensor, index: Tensor,
                 valid: Optional[Tensor] = None) -> Tensor:
    """A copy of the logit canvas with the active tokens' logits written in.

    Args:
        canvas: (B, K, N) logits of every original patch (the frozen logits
            of finalised tokens).
        logits: (B, K, M) logits of the current tokens.
        index: (B, M) int64 original patch of each current token.
        valid: (B, M) bool, False for padding (not written); None: all.

    Returns:
        (B, K, N): ``canvas`` with column ``index[b, j]`` of image b replaced
        by ``logits[b, :, j]`` for every valid j; gradients flow into the
        written columns.
    """
    B, K, N = canvas.shape
    idx = index
    if valid is not None:
        # padding goes to an extra column that is dropped afterwards
        idx = torch.where(valid, index, torch.full_like(index, N))
    out = torch.cat([canvas, canvas.new_zeros(B, K, 1)], dim=2)
    out = out.scatter(2, idx[:, None, :].expand(-1, K, -1),
                      logits.to(out.dtype))
    return out[:, :, :N]


def atm_class_probs(mask_logits: Tensor, presence_logits: Tensor) -> Tensor:
    """Per-class probabilities of an ATM (SegViT) head:
    ``softmax(presence)[..., 0] * sigmoid(mask_logits)``.

    Args:
        mask_logits: (B, K, N) mask logits of the class queries.
        presence_logits: (B, K, 2) logits of (class present, no object).

    Returns:
        (B, K, N) in [0, 1].
    """
    present = presence_logits.softmax(dim=-1)[..., :1]  # (B, K, 1)
    return present * mask_logits.sigmoid()
