"""Packing a subset of tokens into a shorter, padded batch and back.

Token pruning keeps a different number of tokens per image. Packing gathers
each image's kept tokens (in their original order) to the front of a
(B, M', C) batch, M' = the largest kept count, and marks the padding with a
``valid`` mask, so that later blocks run on fewer tokens for the whole batch
at once, with no Python loop over images (docs/backbone.md).
"""
from typing import Tuple

import torch
from torch import Tensor

__all__ = ['pack_index', 'gather_tokens', 'scatter_tokens']


def pack_index(keep: Tensor) -> Tuple[Tensor, Tensor]:
    """Gather positions of the kept tokens of each image.

    Args:
        keep: (B, M) bool, True for tokens that stay.

    Returns:
        ``index`` (B, M') int64: positions of the kept tokens, ascending, then
        (for images with fewer than M' kept tokens) positions of dropped
        tokens as padding; ``valid`` (B, M') bool: True for real entries.
        M' = the largest number of kept tokens in the batch (at least 1).
    """
    if keep.dim() != 2 or keep.dtype != torch.bool:
        raise ValueError('keep must be a (B, M) bool tensor, got '
                         f'{keep.dtype} {tuple(keep.shape)}')
    counts = keep.sum(1)
    m_out = max(int(counts.max()), 1) if keep.numel() else 1
    # stable sort puts the kept tokens first, each group in original order
    order = torch.argsort((~keep).to(torch.uint8), dim=1, stable=True)
    index = order[:, :m_out]
    valid = torch.arange(m_out, device=keep.device)[None] < counts[:, None]
    return index, valid


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """(B, M, ...) per-token values -> (B, M', ...) at ``index`` (B, M')."""
    idx = index.view(index.shape + (1, ) * (x.dim() - 2))
    return torch.gather(x, 1, idx.expand(index.shape + x.shape[2:]))


def scatter_tokens(base: Tensor, values: Tensor, index: Tensor,
                   valid: Tensor) -> Tensor:
    """Write packed tokens back into their layout.

    Args:
        base: (B, M, C) tokens of the layout before packing (kept for
            positions that were not packed).
        values: (B, M', C) packed tokens.
        index, valid: as returned by :func:`pack_index`.

    Returns:
        (B, M, C): ``base`` with ``values[b, j]`` written at
        ``index[b, j]`` wherever ``valid[b, j]``.
    """
    B, M, C = base.shape
    # padding entries go to an extra slot that is dropped afterwards
    idx = torch.where(valid, index, torch.full_like(index, M))
    out = torch.cat([base, base.new_zeros(B, 1, C)], dim=1)
    out = out.scatter(1, idx[..., None].expand(-1, -1, C),
                      values.to(out.dtype))
    return out[:, :M]
