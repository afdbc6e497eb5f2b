"""ALGM: adaptive local-then-global token merging (docs/token_merging.md).

ALGM (Norouzi et al., CVPR 2024) merges tokens twice inside a plain ViT:

* **CLAP** (local, first chosen block): every non-overlapping window (2x2)
  of patch tokens whose tokens are nearly identical (mean pairwise cosine
  similarity >= a threshold) becomes one token (:func:`window_similarity`,
  :func:`local_merge_groups`);
* **GBM** (global, later blocks): ToMe's bipartite matching with a merge
  count that adapts to the similarity statistics: A tokens whose best score
  is at least ``mean + std / layer_idx`` are merged
  (:func:`global_merge_groups`).

Both steps are written as a *group assignment*: ``assign`` (B, M) gives,
for each token of the layout before the merge, the position of the token
it goes into, and ``num_groups`` (B,) how many tokens an image has after
it. :func:`merge_groups` forms the size-weighted means,
:func:`unmerge_groups` copies them back (ALGM's un-merge). Images may keep
different numbers of tokens (per-image merge counts); the merged batch is
then padded at the end and ``valid`` marks the real tokens, so batches
stay dense and nothing loops over images. ``batch_coupled=True`` is the
reference's behaviour: one merge count for the whole batch, the minimum
over its images.

Token order after a merge is the reference's: CLAP puts the merged windows
first (most similar first), then the other tokens in their original order;
GBM puts the unmerged A tokens first (original order), then all B tokens.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .token_merging import bipartite_best_match, select_rows

__all__ = ['window_similarity', 'local_merge_groups', 'global_merge_groups',
           'merge_groups', 'unmerge_groups', 'merge_groups_index']


def _window_count(hw: Sequence[int], window: Sequence[int]):
    gh, gw = hw[0] // window[0], hw[1] // window[1]
    if gh == 0 or gw == 0:
        raise ValueError(f'window {tuple(window)} is larger than the '
                         f'{tuple(hw)} patch grid')
    return gh, gw


def window_similarity(x: Tensor, hw: Sequence[int],
                      window: Sequence[int] = (2, 2)) -> Tensor:
    """Mean cosine similarity of the distinct token pairs of every window.

    Args:
        x: (B, H*W, C) patch tokens in row-major grid order.
        hw: (H, W) patch grid. Rows / columns left over by the window (H or
            W not divisible) belong to no window.
        window: (wh, ww) window size, at least two tokens.

    Returns:
        (B, gh, gw) similarities, gh = H // wh, gw = W // ww.
    """
    B, N, C = x.shape
    H, W = hw
    if N != H * W:
        raise ValueError(f'window_similarity: {N} tokens do not form the '
                         f'{tuple(hw)} grid')
    wh, ww = window
    k = wh * ww
    if k < 2:
        raise ValueError(f'window {tuple(window)} holds fewer than 2 tokens')
    gh, gw = _window_count(hw, window)
    t = x.reshape(B, H, W, C)[:, :gh * wh, :gw * ww]
    t = t.reshape(B, gh, wh, gw, ww, C).permute(0, 1, 3, 2, 4, 5)
    t = t.reshape(B, gh, gw, k, C)
    t = t / t.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    # sum over all pairs = |sum of unit vectors|^2; minus the k self pairs
    s = t.sum(dim=3)
    return ((s * s).sum(-1) - k) / (k * (k - 1))


def _window_members(hw, window, device) -> Tensor:
    """(gh * gw, wh * ww) row-major patch index of every window's tokens."""
    H, W = hw
    wh, ww = window
    gh, gw = _window_count(hw, window)
    grid = torch.arange(H * W, device=device).reshape(H, W)
    grid = grid[:gh * wh, :gw * ww].reshape(gh, wh, gw, ww)
    return grid.permute(0, 2, 1, 3).reshape(gh * gw, wh * ww)


def local_merge_groups(sim: Tensor, hw: Sequence[int],
                       window: Sequence[int] = (2, 2),
                       thresh: float = 0.88,
                       batch_coupled: bool = False
                       ) -> Tuple[Tensor, Tensor]:
    """CLAP: merge every window whose similarity is at least ``thresh``.

    Args:
        sim: (B, gh, gw) from :func:`window_similarity`.
        hw, window: as there.
        thresh: similarity threshold tau.
        batch_coupled: the reference's rule: every image merges the same
            number of windows, the minimum over the batch of the windows at
            or above ``thresh`` (its most similar ones).

    Returns:
        (assign (B, H*W) int64, num_groups (B,) int64): the merged windows
        first (most similar first, ties by window order), then every other
        token in row-major order.
    """
    B = sim.shape[0]
    device = sim.device
    members = _window_members(hw, window, device)       # (G, k)
    G, k = members.shape
    s = sim.reshape(B, G)
    r = (s >= thresh).sum(dim=1)                         # (B,)
    if batch_coupled:
        r = r.min().expand(B)
    order = torch.argsort(s, dim=1, descending=True, stable=True)
    merged_win = torch.arange(G, device=device) < r[:, None]  # rank < r
    # window of rank j -> new position j (merged); mark its tokens
    N = hw[0] * hw[1]
    win_rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(G, device=device).expand(B, G))
    win_merged = merged_win.gather(1, win_rank)          # (B, G) by window
    tok_merged = torch.zeros(B, N, dtype=torch.bool, device=device)
    tok_merged[:, members.reshape(-1)] = win_merged.repeat_interleave(k, 1)
    # other tokens follow in row-major order
    rest_pos = r[:, None] + torch.cumsum(~tok_merged, dim=1) - 1
    tok_win_rank = torch.zeros(B, N, dtype=torch.long, device=device)
    tok_win_rank[:, members.reshape(-1)] = win_rank.repeat_interleave(k, 1)
    assign = torch.where(tok_merged, tok_win_rank, rest_pos)
    return assign, N - (k - 1) * r


def global_merge_groups(metric: Tensor, layer_idx: int,
                        valid: Optional[Tensor] = None,
                        offset: int = 0,
                        thresh: Optional[float] = None,
                        batch_coupled: bool = False
                        ) -> Tuple[Tensor, Tensor]:
    """GBM: bipartite matching with an adaptive merge count.

    Each set-A token (even positions of the whole sequence, as in ToMe)
    finds its most similar set-B token; those whose best score is at least
    the threshold are merged into their partners.

    Args:
        metric: (B, M, D) patch tokens to match on (ALGM: the features after
            the attention residual).
        layer_idx: divisor of the standard deviation in the per-forward
            threshold ``mean + std / layer_idx`` (the reference passes the
            1-based block number).
        valid: (B, M) bool, False for padding (never merged, not in the
            statistics).
        offset: prefix tokens in front (A / B parity).
        thresh: a fixed (calibrated) threshold instead of the per-forward
            statistics.
        batch_coupled: the reference's rule: the threshold from the batch
            means of the per-image mean and std, and one merge count for the
            batch, the minimum over its images. Otherwise each image uses its
            own statistics and count.

    Returns:
        (assign (B, M) int64, num_groups (B,) int64): unmerged A tokens
        first, then all B tokens; padding goes after the real tokens.
    """
    B, M, _ = metric.shape
    device = metric.device
    if valid is None:
        valid = torch.ones(B, M, dtype=torch.bool, device=device)
    sa = offset % 2
    best, partner = bipartite_best_match(metric, offset, valid)  # (B, Ma)
    va = valid[:, sa::2]
    if thresh is None:
        n = va.sum(1).clamp_min(1)
        b = torch.where(va, best, torch.zeros_like(best))
        mean = b.sum(1) / n
        std = (((b - mean[:, None]) ** 2 * va).sum(1) /
               (n - 1).clamp_min(1)).sqrt()           # unbiased, as torch
        if batch_coupled:
            mean, std = mean.mean().expand(B), std.mean().expand(B)
        thr = mean + std / layer_idx
    else:
        thr = torch.full((B, ), float(thresh), device=device,
                         dtype=best.dtype)
    merge_a = (best >= thr[:, None]) & va
    r = merge_a.sum(1)
    if batch_coupled:
        r = r.min().expand(B)
        # the r best-matched A tokens of every image
        order = torch.argsort(best, dim=1, descending=True, stable=True)
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(order.shape[1], device=device).expand(
                B, -1))
        merge_a = rank < r[:, None]
    Ma = merge_a.shape[1]
    keep_a = va & ~merge_a
    n_unm = keep_a.sum(1)                                 # (B,)
    vb = valid[:, 1 - sa::2]
    a_new = torch.cumsum(keep_a, 1) - 1
    b_new = n_unm[:, None] + torch.cumsum(vb, 1) - 1
    a_new = torch.where(merge_a, b_new.gather(1, partner), a_new)
    num_groups = n_unm + vb.sum(1)
    # padding: after the real tokens, in its own order
    pad = ~valid
    pad_pos = num_groups[:, None] + torch.cumsum(pad, 1) - 1
    assign = torch.empty(B, M, dtype=torch.long, device=device)
    assign[:, sa::2] = a_new[:, :Ma]
    assign[:, 1 - sa::2] = b_new
    return torch.where(pad, pad_pos, assign), num_groups


def merge_groups(x: Tensor, assign: Tensor, num_groups: Tensor,
                 size: Optional[Tensor] = None,
                 valid: Optional[Tensor] = None
                 ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Size-weighted mean of every group.

    Args:
        x: (B, M, C) tokens.
        assign: (B, M) group of each token (from the functions above).
        num_groups: (B,) real groups per image.
        size: (B, M) patches per token (default 1).
        valid: (B, M) bool, False for padding (weight 0).

    Returns:
        (merged (B, G, C), size (B, G), valid (B, G) bool or None when every
        image has G = max(num_groups) groups). Padding groups hold zeros and
        size 0.
    """
    B, M, C = x.shape
    G = int(num_groups.max()) if B else 0
    w = x.new_ones(B, M) if size is None else size.to(x.dtype)
    if valid is not None:
        w = w * valid.to(x.dtype)
    # padding positions beyond G (from the layout before) fold into slot 0
    # with weight 0
    idx = assign.clamp_max(G - 1) if G else assign
    new_size = w.new_zeros(B, G).scatter_add_(1, idx, w)
    flat = (idx + torch.arange(B, device=x.device)[:, None] * G).flatten()
    total = x.new_zeros(B * G, C).index_add_(
        0, flat, (x * w[..., None]).reshape(B * M, C))
    merged = total.view(B, G, C) / new_size.clamp_min(1e-12)[..., None]
    new_valid = torch.arange(G, device=x.device) < num_groups[:, None]
    if bool(new_valid.all()):
        new_valid = None
    return merged, new_size, new_valid


def unmerge_groups(x: Tensor, assign: Tensor) -> Tensor:
    """(B, G, C) merged tokens -> (B, M, C): every token of the layout
    before the merge takes its group's value."""
    return select_rows(x, assign.clamp_max(x.shape[1] - 1))


def merge_groups_index(index: Tensor, assign: Tensor, num_groups: Tensor,
                       valid: Optional[Tensor] = None) -> Tensor:
    """(B, M) original patch of each token -> (B, G): a group of one real
    token keeps its patch, a group of several (and padding) gets -1."""
    B, M = index.shape
    G = int(num_groups.max()) if B else 0
    real = torch.ones_like(index, dtype=torch.long) if valid is None \
        else valid.long()
    idx = assign.clamp_max(G - 1) if G else assign
    count = torch.zeros(B, G, dtype=torch.long,
                        device=index.device).scatter_add_(1, idx, real)
    patch = torch.full((B, G), -1, dtype=torch.long, device=index.device)
    patch = patch.scatter_reduce(1, idx, torch.where(real.bool(), index, -1),
                                 reduce='amax')
    return torch.where(count == 1, patch, -1)
