"""Windowed attention with decomposed relative positions (ViTDet / MViTv2).

:class:`WindowedAttention` (registered ``WindowedAttention``) is the
attention of the vtseg ViT's windowed and relative-position blocks
(``ViT(window_size=..., global_blocks=..., use_rel_pos=...)``). It keeps the
parameter names of :class:`~vtseg.models.layers.transformer.Attention`
(``qkv``, ``proj``) and adds ``rel_pos_h`` / ``rel_pos_w`` with
``use_rel_pos``, the names of detectron2's and mmdet's ViTDet.

Semantics (docs/backbone.md, "Windowed attention (ViTDet)"):

* ``window_size > 0``: the patch tokens (an (H, W) row-major grid behind
  ``n_prefix`` prefix tokens) are padded at the bottom / right to multiples
  of the window and split into ``window_size x window_size`` windows. Each
  patch query attends to the keys of its window **plus the prefix keys**
  (cls, registers); padded keys are masked out, so padding never influences
  real tokens. Prefix queries attend globally to every token. With
  ``n_prefix = 0`` and a divisible grid this is ViTDet's windowed attention
  (ViTDet lets zero-padded tokens take part as keys; vtseg masks them
  unless ``mask_padding=False``, which reproduces ViTDet exactly).
* ``window_size = 0``: global attention over all tokens.
* ``use_rel_pos``: the decomposed relative position bias
  ``q_i . Rh[i_h - j_h] + q_i . Rw[i_w - j_w]`` (unscaled q) between patch
  query i and patch key j; prefix rows and columns get none. Tables are
  sized for the window (windowed blocks) or for ``input_size`` (global
  blocks) and linearly interpolated when the grid at run time needs another
  length.

The tensor functions (window partition / unpartition with padding, the
padding mask, relative position lookup / resize and the decomposed bias) are
public so that converters and tests share them.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor

from vtseg.registry import MODELS
from .transformer import Attention, attention_mask

__all__ = [
    'WindowedAttention', 'window_partition', 'window_unpartition',
    'window_valid_mask', 'resize_rel_pos', 'rel_pos_lookup',
    'decomposed_rel_pos_bias'
]


# ------------------------------------------------------------ windows
def window_partition(x: Tensor,
                     window_size: int) -> Tuple[Tensor, Tuple[int, int]]:
    """Split a grid into non-overlapping windows, zero-padding the bottom /
    right to multiples of the window.

    Args:
        x: (B, H, W, C) grid.
        window_size: window side ws.

    Returns:
        windows (B * nWh * nWw, ws, ws, C), windows of an image contiguous
        and in row-major window order; and (Hp, Wp), the padded grid size
        (nWh = Hp / ws, nWw = Wp / ws).
    """
    B, H, W, C = x.shape
    ws = window_size
    pad_h, pad_w = -H % ws, -W % ws
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    Hp, Wp = H + pad_h, W + pad_w
    x = x.reshape(B, Hp // ws, ws, Wp // ws, ws, C).transpose(2, 3)
    return x.reshape(-1, ws, ws, C), (Hp, Wp)


def window_unpartition(windows: Tensor, window_size: int,
                       pad_hw: Tuple[int, int],
                       hw: Tuple[int, int]) -> Tensor:
    """Inverse of :func:`window_partition`: merge windows and crop the
    padding.

    Args:
        windows: (B * nWh * nWw, ws, ws, C).
        window_size: ws.
        pad_hw: (Hp, Wp) padded grid size.
        hw: (H, W) grid size before padding.

    Returns:
        (B, H, W, C).
    """
    Hp, Wp = pad_hw
    H, W = hw
    ws = window_size
    nh, nw = Hp // ws, Wp // ws
    C = windows.shape[-1]
    x = windows.reshape(-1, nh, nw, ws, ws, C).transpose(2, 3)
    x = x.reshape(-1, Hp, Wp, C)
    return x[:, :H, :W] if (Hp, Wp) != (H, W) else x


def window_valid_mask(hw: Tuple[int, int], window_size: int,
                      device=None) -> Tensor:
    """Which window positions hold real (not padded) tokens.

    Args:
        hw: (H, W) grid size before padding.
        window_size: ws.

    Returns:
        (nWh * nWw, ws * ws) bool, True for real tokens; window and position
        order as :func:`window_partition`.
    """
    H, W = hw
    ws = window_size
    Hp, Wp = H - H % -ws, W - W % -ws
    rows = torch.arange(Hp, device=device) < H
    cols = torch.arange(Wp, device=device) < W
    valid = (rows[:, None] & cols[None, :])[None, :, :, None]
    windows, _ = window_partition(valid, ws)
    return windows.reshape(-1, ws * ws)


# ------------------------------------------------------------ rel pos
def resize_rel_pos(rel_pos: Tensor, length: int) -> Tensor:
    """Linearly interpolate a relative position table along its length
    (``F.interpolate(mode='linear', align_corners=False)``, as detectron2).

    Args:
        rel_pos: (L, C) table, entry L // 2 for offset 0.
        length: new length L'.

    Returns:
        (L', C); ``rel_pos`` itself when L' == L.
    """
    if rel_pos.shape[0] == length:
        return rel_pos
    # fp32 at least (fp16 / bf16 tables), float64 stays float64
    t = rel_pos.t()[None].to(torch.promote_types(rel_pos.dtype,
                                                 torch.float32))
    t = F.interpolate(t, size=length, mode='linear', align_corners=False)
    return t[0].t().to(rel_pos.dtype)


def rel_pos_lookup(q_size: int, k_size: int, rel_pos: Tensor) -> Tensor:
    """Table entries for every (query, key) pair along one axis.

    Both axes are mapped onto the longer one, s = max(q_size, k_size): query
    i sits at i * s / q_size, key j at j * s / k_size, and the pair uses
    entry floor(i * s / q_size - j * s / k_size + (k_size - 1) * s / k_size)
    of the table resized (:func:`resize_rel_pos`) to 2 * s - 1 entries
    (detectron2's coordinate scaling, computed here in exact integer
    arithmetic). For q_size == k_size the entry is i - j + size - 1.

    Args:
        q_size: query positions along the axis.
        k_size: key positions along the axis.
        rel_pos: (L, C) table.

    Returns:
        (q_size, k_size, C).
    """
    s = max(q_size, k_size)
    table = resize_rel_pos(rel_pos, 2 * s - 1)
    i = torch.arange(q_size, device=rel_pos.device)[:, None]
    j = torch.arange(k_size, device=rel_pos.device)[None, :]
    # s * (i / q - j / k + (k - 1) / k) over the common denominator q * k
    num = s * (i * k_size - j * q_size + (k_size - 1) * q_size)
    return table[torch.div(num, q_size * k_size, rounding_mode='floor')]


def decomposed_rel_pos_bias(q: Tensor, rel_pos_h: Tensor, rel_pos_w: Tensor,
                            q_hw: Tuple[int, int],
                            k_hw: Tuple[int, int]) -> Tensor:
    """Decomposed relative position bias (MViTv2 / ViTDet).

    bias[..., i, j] = q_i . Rh[i_h, j_h] + q_i . Rw[i_w, j_w] with
    Rh = :func:`rel_pos_lookup` (q_h, k_h, rel_pos_h) and Rw likewise; i and j
    are row-major indices into the (q_h, q_w) query and (k_h, k_w) key grids.

    Args:
        q: (..., q_h * q_w, C) queries (unscaled, as in detectron2).
        rel_pos_h: (L_h, C) table along the height.
        rel_pos_w: (L_w, C) table along the width.
        q_hw: (q_h, q_w).
        k_hw: (k_h, k_w).

    Returns:
        (..., q_h * q_w, k_h * k_w) additive attention bias.
    """
    (qh, qw), (kh, kw) = q_hw, k_hw
    Rh = rel_pos_lookup(qh, kh, rel_pos_h).to(q.dtype)  # (qh, kh, C)
    Rw = rel_pos_lookup(qw, kw, rel_pos_w).to(q.dtype)  # (qw, kw, C)
    lead = q.shape[:-2]
    r_q = q.reshape(*lead, qh, qw, q.shape[-1])
    rel_h = torch.einsum('...hwc,hkc->...hwk', r_q, Rh)  # (..., qh, qw, kh)
    rel_w = torch.einsum('...hwc,wkc->...hwk', r_q, Rw)  # (..., qh, qw, kw)
    bias = rel_h[..., :, None] + rel_w[..., None, :]  # (..., qh, qw, kh, kw)
    return bias.reshape(*lead, qh * qw, kh * kw)


# ------------------------------------------------------------ module
@MODELS.register_module(name='WindowedAttention')
class WindowedAttention(Attention):
    """Windowed / global multi-head attention with optional decomposed
    relative positions (ViTDet).

    Args:
        dim, num_heads, qkv_bias, attn_drop, proj_drop: as
            :class:`~vtseg.models.layers.transformer.Attention`.
        window_size: window side in patch tokens; 0 = global attention.
        use_rel_pos: add the decomposed relative position bias.
        rel_pos_zero_init: :meth:`reset_rel_pos` zeroes the tables (else
            truncated normal, std 0.02).
        input_size: (H, W) pre-training patch grid; sizes the tables of a
            global block (``use_rel_pos`` with ``window_size=0`` needs it).
        mask_padding: mask the padded keys of non-divisible grids (default).
            False reproduces ViTDet exactly: the zero tokens padded before
            the qkv projection take part as keys / values in the border
            windows (their key is the qkv bias); prefix queries still see
            the real tokens only.

    Parameters ``rel_pos_h`` (2 * S_h - 1, head_dim) and ``rel_pos_w``
    (2 * S_w - 1, head_dim), S = (window_size, window_size) or
    ``input_size``, exist only with ``use_rel_pos``.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0,
                 window_size: int = 0, use_rel_pos: bool = False,
                 rel_pos_zero_init: bool = True,
                 input_size: Optional[Sequence[int]] = None,
                 mask_padding: bool = True):
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop)
        self.mask_padding = bool(mask_padding)
        if isinstance(window_size, bool) or not isinstance(window_size, int) \
                or window_size < 0:
            raise ValueError(f'WindowedAttention: window_size must be an int '
                             f'>= 0 (0 = global), got {window_size!r}')
        self.window_size = window_size
        self.use_rel_pos = bool(use_rel_pos)
        self.rel_pos_zero_init = rel_pos_zero_init
        if window_size:
            size = (window_size, window_size)
        elif input_size is not None:
            if isinstance(input_size, int):
                input_size = (input_size, input_size)
            size = tuple(int(s) for s in input_size)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f'WindowedAttention: input_size must be '
                                 f'(H, W) >= 1, got {input_size!r}')
        elif use_rel_pos:
            raise ValueError('WindowedAttention: a global block '
                             '(window_size=0) with use_rel_pos=True needs '
                             'input_size, the pre-training patch grid that '
                             'sizes its relative position tables')
        else:
            size = None
        self.rel_pos_size = size if self.use_rel_pos else None
        if self.use_rel_pos:
            self.rel_pos_h = nn.Parameter(
                torch.zeros(2 * size[0] - 1, self.head_dim))
            self.rel_pos_w = nn.Parameter(
                torch.zeros(2 * size[1] - 1, self.head_dim))
            self.reset_rel_pos()

    def extra_repr(self) -> str:
        return (f'window_size={self.window_size}, use_rel_pos='
                f'{self.use_rel_pos}, rel_pos_size={self.rel_pos_size}' +
                ('' if self.mask_padding else ', mask_padding=False'))

    def reset_rel_pos(self) -> None:
        """(Re-)initialise the relative position tables: zeros with
        ``rel_pos_zero_init``, else truncated normal (std 0.02)."""
        if not self.use_rel_pos:
            return
        for table in (self.rel_pos_h, self.rel_pos_w):
            if self.rel_pos_zero_init:
                nn.init.zeros_(table)
            else:
                trunc_normal_(table, std=0.02)

    def _check_layout(self, T: int, hw, n_prefix: int) -> Tuple[int, int]:
        if hw is None:
            what = f'window_size={self.window_size}' if self.window_size \
                else 'relative positions (use_rel_pos=True)'
            raise ValueError(
                f'WindowedAttention ({what}) needs hw, the (H, W) layout of '
                'the patch tokens; got hw=None (an irregular token set: '
                'pruned / packed / merged tokens cannot be windowed)')
        H, W = int(hw[0]), int(hw[1])
        if n_prefix + H * W != T:
            raise ValueError(
                f'WindowedAttention: {T} tokens do not match n_prefix='
                f'{n_prefix} + hw={tuple(hw)} ({n_prefix + H * W})')
        return H, W

    def forward(self,
                x: Tensor,
                key_mask: Optional[Tensor] = None,
                attn_bias: Optional[Tensor] = None,
                hw: Optional[Tuple[int, int]] = None,
                n_prefix: int = 0,
                return_qkv: bool = False):
        """
        Args:
            x: (B, T, C) tokens, T = n_prefix + H * W.
            key_mask: (B, T) bool, False for keys to ignore (global blocks
                only).
            attn_bias: float bias broadcastable to (B, heads, T, T) (global
                blocks only), added to the relative position bias.
            hw: (H, W) row-major layout of the patch tokens; required for
                windowed blocks and for relative positions.
            n_prefix: prefix tokens (cls, registers) in front.
            return_qkv: also return (q, k, v), each (B, heads, T, C/heads) in
                token order, q unscaled.

        Returns:
            (B, T, C), or ((B, T, C), (q, k, v)).
        """
        B, T, C = x.shape
        if self.window_size:
            if key_mask is not None or attn_bias is not None:
                given = ' and '.join(
                    n for n, v in (('key_mask', key_mask),
                                   ('attn_bias', attn_bias)) if v is not None)
                raise ValueError(
                    f'WindowedAttention(window_size={self.window_size}) got '
                    f'{given}: windowed blocks take no key mask or attention '
                    'bias (token reduction / proportional attention need '
                    'global blocks, see global_blocks)')
            hw = self._check_layout(T, hw, n_prefix)
        elif self.use_rel_pos:
            hw = self._check_layout(T, hw, n_prefix)
        drop = self.attn_drop if self.training else 0.0
        ws = self.window_size
        if ws and not self.mask_padding and (hw[0] % ws or hw[1] % ws):
            out, (q, k, v) = self._windowed_vitdet_padding(x, hw, n_prefix,
                                                           drop)
        elif ws:
            q, k, v = self.project_qkv(x)
            out = self._windowed(q, k, v, hw, n_prefix, drop)
        else:
            q, k, v = self.project_qkv(x)
            mask = attention_mask(key_mask, attn_bias, q.dtype)
            if self.use_rel_pos:
                rel = q.new_zeros(B, self.num_heads, T, T)
                rel[:, :, n_prefix:, n_prefix:] = decomposed_rel_pos_bias(
                    q[:, :, n_prefix:], self.rel_pos_h, self.rel_pos_w, hw,
                    hw)
                if mask is None:
                    mask = rel
                elif mask.dtype == torch.bool:
                    mask = rel.masked_fill(~mask, float('-inf'))
                else:
                    mask = rel + mask
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                 dropout_p=drop)
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(B, T, C)))
        if return_qkv:
            return out, (q, k, v)
        return out

    def _windowed(self, q: Tensor, k: Tensor, v: Tensor, hw: Tuple[int, int],
                  P: int, drop: float) -> Tensor:
        """Windowed attention of q, k, v (B, heads, P + H*W, d) ->
        (B, heads, P + H*W, d)."""
        B, nh, T, d = q.shape
        H, W = hw
        ws = self.window_size
        N = ws * ws

        def to_windows(t: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
            # (B, nh, H*W, d) -> (B * nW, nh, N, d)
            g = t.reshape(B * nh, H, W, d)
            win, pad_hw = window_partition(g, ws)
            nW = win.shape[0] // (B * nh)
            win = win.reshape(B, nh, nW, N, d).transpose(1, 2)
            return win.reshape(B * nW, nh, N, d), pad_hw

        qw, pad_hw = to_windows(q[:, :, P:])
        kw, _ = to_windows(k[:, :, P:])
        vw, _ = to_windows(v[:, :, P:])
        nW = qw.shape[0] // B
        if P:  # every window also sees the prefix keys / values
            kp = k[:, None, :, :P].expand(B, nW, nh, P, d)
            vp = v[:, None, :, :P].expand(B, nW, nh, P, d)
            kw = torch.cat([kp.reshape(B * nW, nh, P, d), kw], dim=2)
            vw = torch.cat([vp.reshape(B * nW, nh, P, d), vw], dim=2)
        mask = None
        if self.use_rel_pos:
            rel = decomposed_rel_pos_bias(qw, self.rel_pos_h, self.rel_pos_w,
                                          (ws, ws), (ws, ws))
            mask = F.pad(rel, (P, 0)) if P else rel  # (B*nW, nh, N, P + N)
        if pad_hw != (H, W):
            valid = window_valid_mask((H, W), ws, q.device)  # (nW, N)
            valid = F.pad(valid, (P, 0), value=True)
            valid = valid[None, :, None, None, :].expand(
                B, nW, 1, 1, P + N).reshape(B * nW, 1, 1, P + N)
            mask = valid if mask is None else \
                mask.masked_fill(~valid, float('-inf'))
        out = F.scaled_dot_product_attention(qw, kw, vw, attn_mask=mask,
                                             dropout_p=drop)
        # (B * nW, nh, N, d) -> (B, nh, H*W, d)
        out = out.reshape(B, nW, nh, N, d).transpose(1, 2)
        out = out.reshape(B * nh * nW, ws, ws, d)
        out = window_unpartition(out, ws, pad_hw, (H, W))
        out = out.reshape(B, nh, H * W, d)
        if P:  # prefix queries attend globally (no padding in the token set)
            pre = F.scaled_dot_product_attention(q[:, :, :P], k, v,
                                                 dropout_p=drop)
            out = torch.cat([pre, out], dim=2)
        return out

    def _windowed_vitdet_padding(self, x: Tensor, hw: Tuple[int, int],
                                 P: int, drop: float):
        """``mask_padding=False``: pad the (normalised) patch tokens with
        zeros before the projection, as ViTDet does, so that the padded
        tokens are keys / values of the border windows. Returns the output
        (B, heads, P + H*W, d) and the q, k, v of the real tokens."""
        B, T, C = x.shape
        H, W = hw
        ws = self.window_size
        Hp, Wp = H - H % -ws, W - W % -ws
        grid = x[:, P:].reshape(B, H, W, C)
        grid = F.pad(grid, (0, 0, 0, Wp - W, 0, Hp - H))
        xp = torch.cat([x[:, :P], grid.reshape(B, Hp * Wp, C)], dim=1)
        qp, kp, vp = self.project_qkv(xp)
        out = self._windowed(qp, kp, vp, (Hp, Wp), P, drop)

        def crop(t: Tensor) -> Tensor:
            nh, d = t.shape[1], t.shape[3]
            g = t[:, :, P:].reshape(B, nh, Hp, Wp, d)[:, :, :H, :W]
            return torch.cat([t[:, :, :P], g.reshape(B, nh, H * W, d)], 2)

        q, k, v = crop(qp), crop(kp), crop(vp)
        out = crop(out)
        if P:  # prefix queries: the real tokens only
            out = torch.cat([
                F.scaled_dot_product_attention(q[:, :, :P], k, v,
                                               dropout_p=drop),
                out[:, :, P:]], dim=2)
        return out, (q, k, v)
