"""Packing pruned token sets on a :class:`TokenGrid` (the ``pack``
implementation of token pruning), with its restore state."""
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from vtseg.functional.token_packing import (gather_tokens, pack_index,
                                            scatter_tokens)
from .token_grid import RestoreState, TokenGrid

__all__ = ['PackedTokens', 'pack_tokens']


@dataclass
class PackedTokens(RestoreState):
    """Restore state of :func:`pack_tokens`.

    Attributes:
        index: (B, M') positions of the packed tokens in the layout before
            packing (padding entries point at dropped tokens).
        valid: (B, M') bool, real entries.
        dropped: (B, M, C) patch tokens at packing time: the values that the
            dropped tokens keep when the set is unpacked (they left the
            later blocks, so their features are frozen there).
        owner: the stage that packed.
    """
    index: Tensor
    valid: Tensor
    dropped: Tensor
    owner: str = 'pack_tokens'

    def undo(self, patches: Tensor,
             transform: Optional[Callable[[Tensor], Tensor]] = None
             ) -> Tensor:
        """(B, M', C) packed tokens -> (B, M, C) in the layout before
        packing; dropped tokens get their values at packing time (passed
        through ``transform``, e.g. the output level's norm)."""
        dropped = self.dropped if transform is None else \
            transform(self.dropped)
        return scatter_tokens(dropped.to(patches.dtype), patches,
                              self.index, self.valid)


def pack_tokens(grid: TokenGrid, keep: Tensor,
                owner: str = 'pack_tokens') -> TokenGrid:
    """Keep only the tokens marked in ``keep``, packed into a shorter padded
    batch (no loop over images).

    Args:
        grid: grid with (B, n_prefix + M, C) tokens.
        keep: (B, M) bool over the current patch tokens (padding of an
            earlier packing is dropped whatever ``keep`` says).
        owner: stage name for error messages.

    Returns:
        A grid with (B, n_prefix + M', C) tokens, M' the largest kept count;
        ``valid`` marks each image's real tokens, ``index`` / ``size`` are
        gathered along, and a :class:`PackedTokens` state is pushed so that
        output restoration can put every token back in place.
    """
    if tuple(keep.shape) != (grid.x.shape[0], grid.num_tokens):
        raise ValueError(f'{owner}: keep has shape {tuple(keep.shape)}, '
                         f'expected {(grid.x.shape[0], grid.num_tokens)}')
    if grid.attn_bias is not None:
        raise ValueError(f'{owner}: cannot pack tokens while an attention '
                         'bias is set (the stage that set it must come after '
                         'the packing)')
    if grid.valid is not None:
        keep = keep & grid.valid
    index, valid = pack_index(keep)
    patches = grid.patches
    packed = gather_tokens(patches, index)
    size = None if grid.size is None else gather_tokens(grid.size, index)
    state = PackedTokens(index=index, valid=valid, dropped=patches,
                         owner=owner)
    x = torch.cat([grid.prefix, packed], dim=1)
    return grid.push(state, x=x, index=gather_tokens(grid.index, index),
                     valid=valid, size=size, reduced_hw=None,
                     attn_bias=None)
