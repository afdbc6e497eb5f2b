"""The record passed between backbone blocks, token stages and heads."""
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional, Tuple

from torch import Tensor


@dataclass
class TokenGrid:
    """Tokens of one forward pass plus what is needed to map them back.

    Attributes:
        x: (B, T, C) tokens, prefix tokens (cls, registers) first.
        hw: (H, W) grid of the original patches; always the full-resolution
            grid, never inferred from T.
        n_prefix: number of prefix tokens at the front of ``x``.
        reduced_hw: (h, w) when the current patch tokens form a smaller
            regular grid (e.g. Expedit clusters), else None.
        keep: (B, N) bool, tokens still alive (pruning); None = all alive.
        assign: (B, N) int64, index of the current token holding each
            original patch (merging); None when not merged.
        size: (B, T - n_prefix) number of original patches per token.
        restore: reducer state needed to rebuild the full grid (e.g. Expedit's
            clustering-time features); None when the grid is full.
        extras: free-form per-forward state for stages (never read by the
            backbone).
    """
    x: Tensor
    hw: Tuple[int, int]
    n_prefix: int
    reduced_hw: Optional[Tuple[int, int]] = None
    keep: Optional[Tensor] = None
    assign: Optional[Tensor] = None
    size: Optional[Tensor] = None
    restore: Any = None
    extras: Dict[str, Any] = field(default_factory=dict)

    @property
    def num_patches(self) -> int:
        """N, the number of original patches (H * W)."""
        return self.hw[0] * self.hw[1]

    @property
    def is_reduced(self) -> bool:
        """True when ``x`` does not hold one token per original patch."""
        return self.x.shape[1] - self.n_prefix != self.num_patches

    @property
    def prefix(self) -> Tensor:
        """(B, n_prefix, C) prefix tokens."""
        return self.x[:, :self.n_prefix]

    @property
    def patches(self) -> Tensor:
        """(B, T - n_prefix, C) patch (or reduced) tokens."""
        return self.x[:, self.n_prefix:]

    def replace(self, **changes) -> 'TokenGrid':
        """A copy with some fields changed (``dataclasses.replace``)."""
        return replace(self, **changes)
