"""Which side of a normalised cut is the foreground (TokenCut), as plain
functions.

A normalised cut splits the tokens at the mean of the second generalised
eigenvector x into ``x > mean(x)`` and the rest. The eigenvector's sign is
arbitrary, so a rule has to say which of the two sides is the object. The
rules (``foreground=`` of :class:`~vtseg.models.segmentors.TokenCut` and
``TokenCutVideo``; docs/tokencut.md, "Foreground side and the tuning
protocol"):

* ``'reference'``: the side holding the token of largest |x| (TokenCut's
  rule in image and video mode; ties in |x|: the first such token in
  row-major order, frame-major in video).
* ``'border'``: the side holding fewer of the image's border tokens (outer
  ring of the token grid, of every frame in video mode). Background usually
  surrounds the object, so it owns most of the border.
* ``'smaller'``: the side with fewer tokens.

Video only (one cut over the tokens of many frames):

* ``'majority'``: every frame votes with the border rule on its own border
  tokens; the side with more votes is the foreground of the whole chunk.
* ``'previous'``: per frame. The first frame of a chunk follows the border
  rule (or agrees with the previous chunk's last frame); every later frame
  keeps the side that overlaps the previous frame's foreground more. Unlike
  the other rules, the side may change from one frame to the next.

Ties (equal border counts, equal sizes, equal votes) fall back to the next
rule in ``border -> reference`` / ``smaller -> reference`` /
``majority -> border -> reference``, so every rule is deterministic.

Two conventions for the complement, kept exactly as TokenCut's reference
code has them: in image mode the foreground is ``x > mean(x)`` or its plain
complement ``x <= mean(x)`` (mean = ``x.sum() / N``); in video mode x is
negated and the foreground recomputed as ``-x > mean(-x)`` (mean =
``x.mean()``). They differ only on tokens exactly at the mean.
"""
from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'IMAGE_FOREGROUND_RULES', 'VIDEO_FOREGROUND_RULES', 'border_tokens',
    'check_foreground_rule', 'foreground_is_positive', 'orient_cut',
    'video_foreground'
]

#: rules for one image's cut (image, saliency and multi-object modes).
IMAGE_FOREGROUND_RULES = ('reference', 'border', 'smaller')
#: rules for a cut over the tokens of several frames (video mode).
VIDEO_FOREGROUND_RULES = IMAGE_FOREGROUND_RULES + ('majority', 'previous')


def check_foreground_rule(rule: str, video: bool = False,
                          where: str = 'foreground') -> str:
    """Return ``rule`` if it is a valid rule, else raise ValueError naming
    ``where`` (e.g. the config key) and the valid choices."""
    valid = VIDEO_FOREGROUND_RULES if video else IMAGE_FOREGROUND_RULES
    if rule not in valid:
        video_only = [r for r in VIDEO_FOREGROUND_RULES if r not in valid]
        extra = '' if video else f' ({video_only} are video-only rules)'
        raise ValueError(f'{where} must be one of {valid}, got {rule!r}'
                         f'{extra}')
    return rule


def border_tokens(grid: Sequence[int]) -> np.ndarray:
    """The outer ring of an (h, w) token grid.

    Args:
        grid: (h, w).

    Returns:
        (h * w,) bool, row-major: True on the first / last row and column.
    """
    h, w = int(grid[0]), int(grid[1])
    m = np.zeros((h, w), bool)
    m[0, :] = m[-1, :] = True
    m[:, 0] = m[:, -1] = True
    return m.ravel()


def _reference_positive(part: np.ndarray, x: np.ndarray) -> bool:
    return bool(part[int(np.argmax(np.abs(x)))])


def _border_vote(part: np.ndarray, border: np.ndarray) -> int:
    """+1: ``part`` holds fewer border tokens than the complement, -1: more,
    0: as many."""
    b_in = int(np.count_nonzero(part & border))
    b_out = int(np.count_nonzero(~part & border))
    return int(np.sign(b_out - b_in))


def foreground_is_positive(part: np.ndarray, eigvec: np.ndarray,
                           rule: str = 'reference',
                           border: Optional[np.ndarray] = None) -> bool:
    """Whether the side ``part`` (``x > mean(x)``) is the foreground.

    Args:
        part: (N,) bool, the tokens with x > mean(x) (any shape, flattened).
        eigvec: (N,) float, the cut's eigenvector x.
        rule: ``'reference'``, ``'border'`` or ``'smaller'`` (module
            docstring; ties fall back to ``'reference'``).
        border: (N,) bool border tokens; needed by ``'border'``.

    Returns:
        True if ``part`` is the foreground, False if its complement is.
    """
    part = np.asarray(part, bool).ravel()
    x = np.asarray(eigvec).ravel()
    if part.shape != x.shape:
        raise ValueError(f'part {part.shape} and eigvec {x.shape} differ')
    check_foreground_rule(rule)
    if rule == 'border':
        if border is None:
            raise ValueError("the 'border' foreground rule needs the border "
                             'tokens (border=)')
        border = np.asarray(border, bool).ravel()
        if border.shape != part.shape:
            raise ValueError(f'border {border.shape} and part {part.shape} '
                             'differ')
        vote = _border_vote(part, border)
        if vote:
            return vote > 0
    elif rule == 'smaller':
        n_in = int(np.count_nonzero(part))
        n_out = part.size - n_in
        if n_in != n_out:
            return n_in < n_out
    return _reference_positive(part, x)


def orient_cut(x: np.ndarray, rule: str = 'reference',
               border: Optional[np.ndarray] = None
               ) -> Tuple[np.ndarray, np.ndarray, int, bool]:
    """Foreground side, sign and seed of one image's cut.

    Args:
        x: (N,) float64 eigenvector (not all zero).
        rule: one of :data:`IMAGE_FOREGROUND_RULES`.
        border: (N,) bool border tokens (``'border'``).

    Returns:
        (part, x, seed, flipped): part (N,) bool foreground (``x > mean(x)``
        or its complement); x negated when the complement was chosen (so
        the foreground side is the positive side of x); seed: flat index of
        the foreground token with largest |x| (with ``'reference'`` this is
        argmax |x| over all tokens, TokenCut's seed); flipped: whether x
        was negated.
    """
    part = x > x.sum() / x.shape[0]
    flipped = not foreground_is_positive(part, x, rule, border)
    if flipped:
        x = -x
        part = ~part
    idx = np.flatnonzero(part)
    seed = int(idx[np.argmax(np.abs(x[idx]))])
    return part, x, seed, flipped


def video_foreground(x: np.ndarray, n_frames: int, rule: str = 'reference',
                     border: Optional[np.ndarray] = None,
                     previous: Optional[np.ndarray] = None
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """Foreground of one video cut (the tokens of ``n_frames`` frames).

    Args:
        x: (T * N,) float eigenvector, frame-major; not all zero.
        n_frames: T.
        rule: one of :data:`VIDEO_FOREGROUND_RULES` (module docstring).
        border: (N,) bool border tokens of one frame (``'border'``,
            ``'majority'``, ``'previous'``).
        previous: (N,) bool foreground of the frame before this chunk
            (``'previous'``: the first frame agrees with it instead of
            following the border rule), or None.

    Returns:
        (foreground, x): (T * N,) bool and (T * N,) float. For the
        clip-wide rules x is negated when the complement was chosen and the
        foreground is ``x > mean(x)``; for ``'previous'`` each frame's
        values are negated where that frame took the other side.
    """
    check_foreground_rule(rule, video=True)
    x = np.asarray(x)
    m = x.shape[0]
    if n_frames < 1 or m % n_frames:
        raise ValueError(f'{m} tokens cannot be split into {n_frames} '
                         'frames')
    n = m // n_frames
    if rule != 'reference' and rule != 'smaller':
        if border is None:
            raise ValueError(f'the {rule!r} foreground rule needs the border '
                             'tokens of a frame (border=)')
        border = np.asarray(border, bool).ravel()
        if border.shape != (n,):
            raise ValueError(f'border has {border.size} tokens, a frame '
                             f'{n}')
    mean = x.mean()
    pos = x > mean
    if rule in IMAGE_FOREGROUND_RULES:
        positive = foreground_is_positive(
            pos, x, rule, None if border is None else np.tile(border,
                                                              n_frames))
    elif rule == 'majority':
        votes = sum(_border_vote(f, border) for f in pos.reshape(n_frames, n))
        positive = (votes > 0 if votes else foreground_is_positive(
            pos, x, 'border', np.tile(border, n_frames)))
    else:  # 'previous'
        neg = -x > (-x).mean()
        pos_f, neg_f = pos.reshape(n_frames, n), neg.reshape(n_frames, n)
        fg = np.empty((n_frames, n), bool)
        side = np.empty(n_frames, bool)  # True: the positive side
        for t in range(n_frames):
            if t == 0 and previous is None:
                vote = _border_vote(pos_f[0], border)
                side[0] = (vote > 0 if vote else _reference_positive(
                    pos, x))
            else:
                prev = fg[t - 1] if t else np.asarray(previous, bool).ravel()
                keep = side[t - 1] if t else True
                a = _overlap(pos_f[t], prev)
                b = _overlap(neg_f[t], prev)
                side[t] = a > b if a != b else keep
            fg[t] = pos_f[t] if side[t] else neg_f[t]
        sign = np.where(side, 1.0, -1.0)
        return fg.ravel(), (x.reshape(n_frames, n) * sign[:, None]).ravel()
    if not positive:
        x = -x
        pos = x > x.mean()
    return pos, x


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks (1.0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0
