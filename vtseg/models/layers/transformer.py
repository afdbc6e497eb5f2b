"""Transformer layers of the vtseg ViT: attention, MLP, LayerScale, block.

Parameter names follow timm (``norm1``, ``attn.qkv``, ``attn.proj``, ``ls1``,
``norm2``, ``mlp.fc1``, ``mlp.fc2``, ``ls2``), so checkpoints of timm, DINO,
DINOv2, mmseg and Segmenter ViTs convert by renaming only.

The classes are registered (``ViTAttention``, ``ViTBlock``) so that a ViT
config can swap them (``attn_cfg`` / ``block_cfg``); a replacement must
accept the same constructor arguments and call signature.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor

from vtseg.registry import MODELS

__all__ = [
    'Attention', 'Mlp', 'LayerScale', 'Block', 'init_transformer_weights',
    'attention_mask'
]

QKV = Tuple[Tensor, Tensor, Tensor]


def attention_mask(key_mask: Optional[Tensor],
                   attn_bias: Optional[Tensor],
                   dtype: torch.dtype) -> Optional[Tensor]:
    """The ``attn_mask`` argument of ``F.scaled_dot_product_attention`` for
    a boolean key mask and / or an additive float bias.

    Args:
        key_mask: (B, T) bool, False for keys to ignore; or None.
        attn_bias: float tensor broadcastable to (B, heads, T_q, T); or None.
        dtype: dtype of the attention logits (the bias is cast to it).

    Returns:
        None, a (B, 1, 1, T) bool mask, or a float bias with -inf at masked
        keys (broadcastable to (B, heads, T_q, T)).
    """
    if attn_bias is None:
        return None if key_mask is None else key_mask[:, None, None, :]
    bias = attn_bias.to(dtype)
    if key_mask is not None:
        bias = bias.masked_fill(~key_mask[:, None, None, :], float('-inf'))
    return bias


@MODELS.register_module(name='ViTAttention')
class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection.

    Args:
        dim: token width C.
        num_heads: heads (C must be divisible by it).
        qkv_bias: bias in the qkv projection.
        attn_drop: attention-probability dropout (training only).
        proj_drop: dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embed_dims={dim} is not divisible by '
                             f'num_heads={num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def project_qkv(self, x: Tensor) -> QKV:
        """(B, T, C) -> q, k, v, each (B, heads, T, C / heads); q unscaled."""
        B, T, _ = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads,
                                  self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv.unbind(0)

    def forward(self,
                x: Tensor,
                key_mask: Optional[Tensor] = None,
                attn_bias: Optional[Tensor] = None,
                hw: Optional[Tuple[int, int]] = None,
                n_prefix: int = 0,
                return_qkv: bool = False):
        """
        Args:
            x: (B, T, C) tokens.
            key_mask: (B, T) bool, False for keys that must be ignored.
            attn_bias: additive float bias broadcastable to
                (B, heads, T, T), e.g. (B, 1, 1, T) for a per-key bias.
            hw, n_prefix: layout of the patch tokens (used by attention
                variants that need it, e.g. windowed attention; ignored
                here).
            return_qkv: also return (q, k, v), each (B, heads, T, C/heads),
                q unscaled.

        Returns:
            (B, T, C), or ((B, T, C), (q, k, v)).
        """
        B, T, C = x.shape
        q, k, v = self.project_qkv(x)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attention_mask(key_mask, attn_bias, q.dtype),
            dropout_p=self.attn_drop if self.training else 0.0)
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(B, T, C)))
        if return_qkv:
            return out, (q, k, v)
        return out


class LayerScale(nn.Module):
    """Per-channel scaling of a residual branch (CaiT / DINOv2)."""

    def __init__(self, dim: int, init_value: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout: (B, T, C) -> (B, T, C)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


@MODELS.register_module(name='ViTBlock')
class Block(nn.Module):
    """Pre-norm transformer block: x + LS(attn(LN(x))), x + LS(mlp(LN(x))).

    The two residual branches are also callable on their own
    (:meth:`attention_residual`, :meth:`mlp_residual`): the ViT runs token
    stages between them (``position='attn'``, e.g. token merging with the
    block's keys).

    Args:
        dim, num_heads, mlp_ratio, qkv_bias: width, heads, MLP hidden ratio,
            qkv bias.
        drop: dropout after the attention projection and in the MLP.
        attn_drop: attention-probability dropout.
        drop_path: stochastic-depth rate of both branches.
        layer_scale: LayerScale init value, None for none.
        norm_eps: LayerNorm epsilon.
        attn_cfg: registry config of the attention layer (default
            ``dict(type='ViTAttention')``); ``dim``, ``num_heads``,
            ``qkv_bias``, ``attn_drop`` and ``proj_drop`` are filled in.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0,
                 layer_scale: Optional[float] = None, norm_eps: float = 1e-6,
                 attn_cfg: Optional[dict] = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        attn_cfg = dict(attn_cfg or dict(type='ViTAttention'))
        attn_cfg.update(dim=dim, num_heads=num_heads, qkv_bias=qkv_bias,
                        attn_drop=attn_drop, proj_drop=drop)
        self.attn = MODELS.build(attn_cfg)
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale else \
            nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else \
            nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale else \
            nn.Identity()

    def attention_residual(self, x: Tensor,
                           key_mask: Optional[Tensor] = None,
                           attn_bias: Optional[Tensor] = None,
                           hw: Optional[Tuple[int, int]] = None,
                           n_prefix: int = 0,
                           return_qkv: bool = False):
        """x + LS(attn(LN(x))): (B, T, C) -> (B, T, C) [, (q, k, v)]."""
        attn = self.attn(self.norm1(x), key_mask, attn_bias, hw, n_prefix,
                         return_qkv)
        if return_qkv:
            attn, qkv = attn
            return x + self.drop_path(self.ls1(attn)), qkv
        return x + self.drop_path(self.ls1(attn))

    def mlp_residual(self, x: Tensor) -> Tensor:
        """x + LS(mlp(LN(x))): (B, T, C) -> (B, T, C)."""
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))

    def forward(self, x: Tensor, key_mask: Optional[Tensor] = None,
                attn_bias: Optional[Tensor] = None,
                hw: Optional[Tuple[int, int]] = None, n_prefix: int = 0,
                return_qkv: bool = False):
        """(B, T, C) -> (B, T, C) [, (q, k, v)]; arguments as
        :meth:`Attention.forward`."""
        res = self.attention_residual(x, key_mask, attn_bias, hw, n_prefix,
                                      return_qkv)
        if return_qkv:
            x, qkv = res
            return self.mlp_residual(x), qkv
        return self.mlp_residual(res)


def init_transformer_weights(module: nn.Module) -> None:
    """timm / ViT initialisation: truncated-normal (std 0.02) linear weights,
    zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
