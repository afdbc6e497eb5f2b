"""Token merging (ToMe): bipartite soft matching and size-weighted merges.

ToMe (Bolya et al., ICLR 2023) merges, inside a block, the ``r`` patch
tokens that are most similar to another token into that token. The plain
functions here work on the patch tokens only (prefix tokens such as cls and
registers never take part, so they stay first and unmerged), batched, with
the same merge count for every image:

* :func:`bipartite_matching` splits the tokens into set A (even positions
  of the whole sequence) and set B (odd positions), matches every A token
  to its most similar B token (cosine similarity of the metric, e.g. the
  block's keys averaged over heads) and picks the ``r`` best-matched A
  tokens as sources;
* :func:`merge_tokens` averages the sources into their partners, weighted by
  how many original patches each token stands for;
* :func:`unmerge_tokens` copies every merged token back to the positions it
  came from (restoring the token layout before the merge).

The result of a merge lists the unmerged A tokens first (in their original
order), then all B tokens (in order). Method notes: docs/methods/token_merging.md.
"""
import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ['MergePlan', 'bipartite_best_match', 'bipartite_matching',
           'merge_tokens', 'select_rows',
           'merge_index', 'unmerge_tokens', 'proportional_attention_bias']


class MergePlan(NamedTuple):
    """How one merge maps M tokens to M - r.

    Attributes:
        a_pos: (Ma,) positions (among the M tokens) of set A.
        b_pos: (Mb,) positions of set B.
        unm_idx: (B, Ma - r) indices into set A of the unmerged A tokens,
            ascending.
        src_idx: (B, r) indices into set A of the merged (source) tokens.
        dst_idx: (B, r) indices into set B of their partners.
        dst_of: (B, M) new position of every token of the layout before the
            merge (a source points at its partner), for un-merging.
        a_start: position of the first A token (0 or 1): A and B are
            every other token from ``a_start`` / ``1 - a_start``.
    """
    a_pos: Tensor
    b_pos: Tensor
    unm_idx: Tensor
    src_idx: Tensor
    dst_idx: Tensor
    dst_of: Tensor
    a_start: int = 0


def bipartite_best_match(metric: Tensor, offset: int = 0,
                         valid: Tensor = None):
    """Best partner in set B of every set-A token (cosine similarity).

    Args:
        metric: (B, M, D) features, patch tokens only.
        offset: number of prefix tokens in front (fixes the A / B parity as
            in :func:`bipartite_matching`).
        valid: (B, M) bool, False for padding: padding is never a partner
            and its own best score is -inf.

    Returns:
        (best (B, Ma) float, partner (B, Ma) int64 index into set B).
    """
    m = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    sa = offset % 2
    scores = m[:, sa::2] @ m[:, 1 - sa::2].transpose(1, 2)  # (B, Ma, Mb)
    if valid is not None:
        scores = scores.masked_fill(~valid[:, None, 1 - sa::2], -math.inf)
        scores = scores.masked_fill(~valid[:, sa::2, None], -math.inf)
    return scores.max(dim=-1)


def bipartite_matching(metric: Tensor, r: int, offset: int = 0) -> MergePlan:
    """ToMe's bipartite soft matching.

    Args:
        metric: (B, M, D) features to match on (ToMe: the keys averaged over
            heads), patch tokens only.
        r: tokens to merge per image; clipped to M // 2 (at most every B
            token receives sources, every A token is one).
        offset: position of the first patch token in the whole sequence
            (the number of prefix tokens): set A holds the tokens at even
            positions of the whole sequence, as in ToMe, where the cls token
            is position 0 (so with one cls token, patch 0 is in set B).

    Returns:
        A :class:`MergePlan`. Ties in the score order are broken by
        position (stable sort), so the plan is deterministic.
    """
    if metric.dim() != 3:
        raise ValueError('metric must be (B, M, D), got shape '
                         f'{tuple(metric.shape)}')
    if r < 0:
        raise ValueError(f'r must be >= 0, got {r}')
    B, M, _ = metric.shape
    r = min(int(r), M // 2)
    device = metric.device
    a_pos = torch.arange(offset % 2, M, 2, device=device)
    b_pos = torch.arange(1 - offset % 2, M, 2, device=device)
    num_a, num_b = len(a_pos), len(b_pos)
    if r == 0:
        src = torch.zeros(B, 0, dtype=torch.long, device=device)
        unm = torch.arange(num_a, device=device).expand(B, num_a)
        dst = src
    else:
        best, partner = bipartite_best_match(metric, offset)
        order = torch.argsort(best, dim=-1, descending=True, stable=True)
        src = order[:, :r]
        unm = order[:, r:].sort(dim=-1).values
        dst = partner.gather(1, src)
    # new position of every old token: unmerged A tokens first, then B
    n_unm = num_a - src.shape[1]
    a_new = torch.empty(B, num_a, dtype=torch.long, device=device)
    a_new.scatter_(1, unm, torch.arange(n_unm, device=device).expand(B, -1))
    a_new.scatter_(1, src, n_unm + dst)
    dst_of = torch.empty(B, M, dtype=torch.long, device=device)
    dst_of[:, a_pos] = a_new
    dst_of[:, b_pos] = n_unm + torch.arange(num_b, device=device)
    return MergePlan(a_pos, b_pos, unm, src, dst, dst_of, offset % 2)


def merge_tokens(x: Tensor, plan: MergePlan, size: Tensor = None,
                 prefix: Tensor = None):
    """Merge the plan's sources into their partners.

    Args:
        x: (B, M, C) tokens (patch tokens, the layout the plan was made on).
        plan: from :func:`bipartite_matching`.
        size: (B, M) patches represented by each token (default all 1); the
            merged value is the size-weighted mean.
        prefix: optional (B, n, C) tokens (cls, registers) placed in front
            of the merged tokens in the result (one copy less than
            concatenating afterwards).

    Returns:
        (merged (B, n + M - r, C), merged sizes (B, M - r)), n = 0 without
        ``prefix``.
    """
    B, M, C = x.shape
    if size is None:
        size = x.new_ones(B, M)
    size = size.to(x.dtype)
    # A and B are every other token: A token i is token a_start + 2 i.
    # Rows are picked with index_select / index_add on the flattened batch
    # (much faster on CPU than gather / scatter with an expanded index).
    sa, sb = plan.a_start, 1 - plan.a_start
    flat = x.reshape(B * M, C)
    base = torch.arange(B, device=x.device)[:, None] * M + sa

    # unmerged A tokens and the B tokens that receive nothing keep their
    # values: one copy of both, then only the r destination rows change
    unm = flat.index_select(0, (base + 2 * plan.unm_idx).flatten())
    n_unm = plan.unm_idx.shape[1]
    parts = [unm.view(B, n_unm, C), x[:, sb::2]]
    n_pre = 0
    if prefix is not None:
        parts.insert(0, prefix)
        n_pre = prefix.shape[1]
    out = torch.cat(parts, dim=1)
    size_a, size_b = size[:, sa::2], size[:, sb::2]
    src_w = size_a.gather(1, plan.src_idx)
    new_b = size_b.scatter_add(1, plan.dst_idx, src_w)
    if plan.src_idx.shape[1]:
        Mo = out.shape[1]
        rows = out.view(B * Mo, C)
        dst = (torch.arange(B, device=x.device)[:, None] * Mo + n_pre +
               n_unm + plan.dst_idx).flatten()
        src = flat.index_select(0, (base + 2 * plan.src_idx).flatten())
        # destination rows as size-weighted sums (a destination may take
        # several sources: set, accumulate, then divide once per row;
        # repeated indices copy equal values)
        w_dst = size_b.gather(1, plan.dst_idx).flatten()[:, None]
        rows.index_copy_(0, dst, rows.index_select(0, dst) * w_dst)
        rows.index_add_(0, dst, src * src_w.flatten()[:, None])
        rows.index_copy_(0, dst, rows.index_select(0, dst) /
                         new_b.gather(1, plan.dst_idx).flatten()[:, None])
    return out, torch.cat([size_a.gather(1, plan.unm_idx), new_b], dim=1)


def select_rows(x: Tensor, idx: Tensor) -> Tensor:
    """``out[b, j] = x[b, idx[b, j]]``: (B, M, C), (B, K) -> (B, K, C).

    The same as ``x.gather(1, idx[..., None].expand(-1, -1, C))``, done as
    one ``index_select`` on the flattened batch, which is several times
    faster on CPU."""
    B, M, C = x.shape
    flat = idx + torch.arange(B, device=x.device)[:, None] * M
    return x.reshape(B * M, C).index_select(0, flat.flatten()).view(
        B, idx.shape[1], C)


def merge_index(index: Tensor, plan: MergePlan) -> Tensor:
    """(B, M) original patch of each token -> (B, M - r) for the merged set:
    tokens that received a source become -1 (they stand for several
    patches), the others keep their patch."""
    sa = plan.a_start
    a, b = index[:, sa::2], index[:, 1 - sa::2]
    b = b.scatter(1, plan.dst_idx, -1)
    return torch.cat([a.gather(1, plan.unm_idx), b], dim=1)


def unmerge_tokens(x: Tensor, plan: MergePlan) -> Tensor:
    """(B, M - r, C) merged tokens -> (B, M, C) in the layout before the
    merge: every source gets its partner's value."""
    return select_rows(x, plan.dst_of)


def proportional_attention_bias(size: Tensor, n_prefix: int = 0) -> Tensor:
    """ToMe's proportional attention as an additive bias: log(size) on the
    key axis, so that a token standing for s patches counts s times in the
    softmax.

    Args:
        size: (B, M) patches per patch token.
        n_prefix: prefix tokens in front (size 1, bias 0).

    Returns:
        (B, 1, 1, n_prefix + M) float bias, broadcastable to
        (B, heads, T, T).
    """
    bias = size.float().log()
    if n_prefix:
        bias = torch.cat([bias.new_zeros(bias.shape[0], n_prefix), bias], 1)
    return bias[:, None, None, :]
