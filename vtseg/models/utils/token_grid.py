"""The token contract: the record passed between backbone blocks, token
stages and output restoration (docs/backbone.md, "The token record").

A :class:`TokenGrid` holds the current tokens and, for every patch token,
where it came from (``index``), whether it is a real token or padding
(``valid``) and how many original patches it stands for (``size``). Every
stage that changes the token set pushes a :class:`RestoreState` on the
grid's restore stack (:meth:`TokenGrid.push`); output restoration unwinds
that stack in reverse order (:meth:`TokenGrid.pop`), so any sequence of
reductions (prune then merge, cluster twice, ...) can be undone.
"""
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

__all__ = ['TokenGrid', 'RestoreState']

# the grid fields a reduction may change besides ``x``; a RestoreState keeps
# their previous values and :meth:`TokenGrid.pop` puts them back
_SAVED_FIELDS = ('index', 'valid', 'size', 'reduced_hw', 'attn_bias')


class RestoreState:
    """One entry of a :class:`TokenGrid` restore stack: what one token stage
    needs to undo its change of the token set.

    Subclasses add their own state (e.g. Expedit's clustering-time features,
    the gather index of packed tokens) and may implement :meth:`undo`, the
    default way back used when no output restorer claims the state.

    Attributes:
        owner: name of the stage that pushed the state (error messages).
        saved: the grid's ``index``, ``valid``, ``size``, ``reduced_hw`` and
            ``attn_bias`` before the change (set by :meth:`TokenGrid.push`).
    """

    owner: str = 'token stage'
    saved: Dict[str, Any]

    @property
    def can_undo(self) -> bool:
        """True when the state undoes itself (:meth:`undo` implemented)."""
        return type(self).undo is not RestoreState.undo

    def undo(self, patches: Tensor,
             transform: Optional[Callable[[Tensor], Tensor]] = None
             ) -> Tensor:
        """(B, M, C) patch tokens after the change -> (B, M_prev, C) tokens
        of the layout before it.

        ``transform`` is a per-token function already applied to
        ``patches`` (e.g. the output level's LayerNorm); a state that puts
        back tokens it stored applies it to them too."""
        raise NotImplementedError(
            f'{type(self).__name__} (pushed by {self.owner}) has no default '
            'undo: configure a token stage that restores it')


@dataclass
class TokenGrid:
    """Tokens of one forward pass plus what is needed to map them back.

    Shapes: B images, T = n_prefix + M tokens of width C, M current patch
    tokens, N = H * W original patches.

    Attributes:
        x: (B, T, C) tokens, prefix tokens (cls, registers) first.
        hw: (H, W) grid of the original patches; always the full-resolution
            grid, never inferred from T.
        n_prefix: number of prefix tokens at the front of ``x`` (never
            reduced).
        index: (B, M) int64, the original patch (row-major in ``hw``) of each
            current patch token, -1 for tokens that stand for several patches
            (clusters, merged tokens) or for padding. Filled with
            ``arange(N)`` (M == N) or -1 when not given.
        valid: (B, M) bool, False for padding (e.g. after packing pruned
            tokens into a shorter batch, images keep different numbers of
            real tokens) and for tokens masked out; None: all valid. Blocks
            use it as a key mask and zero the rows of invalid tokens.
        size: (B, M) float, original patches represented by each token;
            None: one per token, or not tracked (Expedit's soft clusters).
        reduced_hw: (h, w) when the current patch tokens form a smaller
            regular grid in row-major order (Expedit clusters), else None.
        attn_bias: additive float attention bias for the blocks, broadcastable
            to (B, heads, T, T) (e.g. log token sizes for proportional
            attention, shape (B, 1, 1, T)); None for no bias.
        restores: the restore stack, oldest first: one :class:`RestoreState`
            per stage that changed the token set.
        extras: free-form per-forward state for stages (never read by the
            backbone).

    Shape mismatches between ``x`` and the per-token fields raise a
    ``ValueError`` at construction (also through :meth:`replace`).
    """
    x: Tensor
    hw: Tuple[int, int]
    n_prefix: int
    index: Optional[Tensor] = None
    valid: Optional[Tensor] = None
    size: Optional[Tensor] = None
    reduced_hw: Optional[Tuple[int, int]] = None
    attn_bias: Optional[Tensor] = None
    restores: Tuple[RestoreState, ...] = ()
    extras: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        B, T = self.x.shape[:2]
        M = T - self.n_prefix
        if M < 0:
            raise ValueError(f'TokenGrid: x has {T} tokens, fewer than '
                             f'n_prefix={self.n_prefix}')
        if self.index is None:
            if M == self.num_patches:
                self.index = torch.arange(
                    M, device=self.x.device).expand(B, M)
            else:
                self.index = torch.full((B, M), -1, dtype=torch.long,
                                        device=self.x.device)
        for name in ('index', 'valid', 'size'):
            val = getattr(self, name)
            if val is not None and tuple(val.shape) != (B, M):
                raise ValueError(
                    f'TokenGrid.{name} has shape {tuple(val.shape)}, '
                    f'expected (B, M) = {(B, M)} for x of shape '
                    f'{tuple(self.x.shape)} with n_prefix={self.n_prefix}')
        if self.valid is not None and self.valid.dtype != torch.bool:
            raise ValueError('TokenGrid.valid must be a bool tensor, got '
                             f'{self.valid.dtype}')
        if self.reduced_hw is not None and \
                self.reduced_hw[0] * self.reduced_hw[1] != M:
            raise ValueError(f'TokenGrid.reduced_hw={self.reduced_hw} does '
                             f'not hold the {M} patch tokens')
        if self.attn_bias is not None and self.attn_bias.shape[-1] != T:
            raise ValueError(
                f'TokenGrid.attn_bias has {self.attn_bias.shape[-1]} key '
                f'entries, x has {T} tokens: a stage changed the token set '
                'without updating the attention bias')
        self.restores = tuple(self.restores)

    # ------------------------------------------------------------- views
    @property
    def num_patches(self) -> int:
        """N, the number of original patches (H * W)."""
        return self.hw[0] * self.hw[1]

    @property
    def num_tokens(self) -> int:
        """M, the number of current patch tokens (padding included)."""
        return self.x.shape[1] - self.n_prefix

    @property
    def is_reduced(self) -> bool:
        """True when ``x`` does not hold one token per original patch in
        patch order (a stage changed the set, or M != N)."""
        return bool(self.restores) or self.num_tokens != self.num_patches

    @property
    def layout(self) -> Optional[Tuple[int, int]]:
        """(rows, cols) of the patch tokens when they form a regular
        row-major grid without padding: ``hw`` for the full grid,
        ``reduced_hw`` for e.g. a cluster grid; None for irregular sets
        (pruned, packed or merged tokens)."""
        if self.valid is not None:
            return None
        if self.reduced_hw is not None:
            return self.reduced_hw
        return None if self.is_reduced else self.hw

    @property
    def prefix(self) -> Tensor:
        """(B, n_prefix, C) prefix tokens."""
        return self.x[:, :self.n_prefix]

    @property
    def patches(self) -> Tensor:
        """(B, M, C) patch (or reduced) tokens."""
        return self.x[:, self.n_prefix:]

    def key_mask(self) -> Optional[Tensor]:
        """(B, T) bool key mask for attention (prefix tokens always valid),
        or None when every token is valid."""
        if self.valid is None:
            return None
        prefix = self.valid.new_ones(self.valid.shape[0], self.n_prefix)
        return torch.cat([prefix, self.valid], dim=1)

    # ----------------------------------------------------------- changes
    def replace(self, **changes) -> 'TokenGrid':
        """A copy with some fields changed (``dataclasses.replace``)."""
        return replace(self, **changes)

    def push(self, state: RestoreState, **changes) -> 'TokenGrid':
        """Record a change of the token set: ``state`` keeps the current
        ``index``, ``valid``, ``size``, ``reduced_hw`` and ``attn_bias`` and
        goes on top of the restore stack; ``changes`` (``x`` and the fields
        that change) give the new grid. Fields not given keep their values
        unless the token count changes, in which case ``index`` becomes -1,
        and ``valid``, ``size``, ``reduced_hw`` and ``attn_bias`` None."""
        state.saved = {k: getattr(self, k) for k in _SAVED_FIELDS}
        x = changes.get('x', self.x)
        if x.shape[1] != self.x.shape[1]:
            for k in _SAVED_FIELDS:
                changes.setdefault(k, None)
        return replace(self, restores=self.restores + (state, ), **changes)

    def pop(self, x: Tensor) -> 'TokenGrid':
        """Undo the top of the restore stack: ``x`` holds the tokens of the
        layout before that change; the saved fields come back."""
        if not self.restores:
            raise RuntimeError('TokenGrid.pop: the restore stack is empty')
        state = self.restores[-1]
        return replace(self, x=x, restores=self.restores[:-1], **state.saved)

    def undo_top(self, tokens: Optional[Tensor] = None,
                 transform: Optional[Callable[[Tensor], Tensor]] = None
                 ) -> Tuple['TokenGrid', Tensor]:
        """Undo the top state with its own :meth:`RestoreState.undo`.

        Args:
            tokens: (B, T, C) tokens to map back (e.g. a normalised output
                level); default ``x``.
            transform: the per-token function already applied to
                ``tokens`` (see :meth:`RestoreState.undo`).

        Returns:
            (the popped grid, (B, n_prefix + M_prev, C) tokens).
        """
        tokens = self.x if tokens is None else tokens
        n = self.n_prefix
        state = self.restores[-1]
        full = torch.cat(
            [tokens[:, :n], state.undo(tokens[:, n:], transform)], dim=1)
        return self.pop(full), full
