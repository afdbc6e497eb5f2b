"""Segmenter's mask-transformer decoder under the official parameter names,
so that ``tools/model_converters/segmenter2vtseg.py`` checkpoints load
strictly (``decode_head.{proj_dec, cls_emb, blocks.i.*, decoder_norm,
proj_patch, proj_classes, mask_norm}``).

mmseg ships the same computation as ``SegmenterMaskTransformerHead`` but with
other names and mmcv attention layers; this head keeps the Segmenter layout
(rstrudel/segmenter ``segm/model/decoder.py``) and reuses the vtseg ViT
block, whose timm-style names are Segmenter's.

It accepts any token grid: Expedit's ``restore='none'`` configs feed it the
(h, w) cluster grid, and the masks are upsampled as usual.
"""
from typing import List, Optional

import torch
import torch.nn as nn
from mmengine.model.weight_init import trunc_normal_
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from vtseg.registry import MODELS
from ..layers import Block, init_transformer_weights

__all__ = ['SegmenterMaskHead', 'MaskTransformerMixin']


class MaskTransformerMixin:
    """The Segmenter mask transformer's layers and token-level forward,
    shared by :class:`SegmenterMaskHead` and the DToP stage head
    ``MaskTransformerStageHead`` (same parameter names, so Segmenter
    decoder weights load into either)."""

    def _build_mask_transformer(self, in_channels: int, num_classes: int,
                                d_model: int, n_layers: int,
                                n_heads: Optional[int], d_ff: Optional[int],
                                drop_path_rate: float, dropout: float,
                                norm_eps: float) -> None:
        n_heads = n_heads or max(1, d_model // 64)
        d_ff = d_ff or 4 * d_model
        self.n_cls = num_classes
        self.d_model = d_model
        self.proj_dec = nn.Linear(in_channels, d_model)
        self.cls_emb = nn.Parameter(torch.zeros(1, num_classes, d_model))
        dpr = torch.linspace(0, drop_path_rate, max(n_layers, 1)).tolist()
        self.blocks = nn.ModuleList([
            Block(d_model, n_heads, mlp_ratio=d_ff / d_model, qkv_bias=True,
                  drop=dropout, attn_drop=dropout, drop_path=dpr[i],
                  layer_scale=None, norm_eps=norm_eps)
            for i in range(n_layers)
        ])
        scale = d_model**-0.5
        # used as ``x @ W`` (not nn.Linear), as in Segmenter
        self.proj_patch = nn.Parameter(scale * torch.randn(d_model, d_model))
        self.proj_classes = nn.Parameter(scale *
                                         torch.randn(d_model, d_model))
        self.decoder_norm = nn.LayerNorm(d_model, eps=norm_eps)
        self.mask_norm = nn.LayerNorm(num_classes, eps=norm_eps)

    def _init_mask_transformer(self) -> None:
        init_transformer_weights(self)
        trunc_normal_(self.cls_emb, std=0.02)

    def mask_logits(self, tokens: Tensor,
                    valid: Optional[Tensor] = None) -> Tensor:
        """(B, M, C_enc) patch tokens -> (B, M, n_cls) mask logits.

        ``valid`` (B, M) bool masks padding tokens out as keys (DToP's packed
        token sets); their own rows are computed but meaningless."""
        B = tokens.shape[0]
        x = self.proj_dec(tokens)
        x = torch.cat([x, self.cls_emb.expand(B, -1, -1)], dim=1)
        key_mask = None
        if valid is not None:
            key_mask = torch.cat([valid, valid.new_ones(B, self.n_cls)], 1)
        for blk in self.blocks:
            x = blk(x, key_mask)
        x = self.decoder_norm(x)
        patches = x[:, :-self.n_cls] @ self.proj_patch
        classes = x[:, -self.n_cls:] @ self.proj_classes
        patches = patches / patches.norm(dim=-1, keepdim=True)
        classes = classes / classes.norm(dim=-1, keepdim=True)
        return self.mask_norm(patches @ classes.transpose(1, 2))


@MODELS.register_module()
class SegmenterMaskHead(MaskTransformerMixin, BaseDecodeHead):
    """Segmenter mask transformer.

    Patch tokens (B, C_enc, h, w) are projected to ``d_model``, ``n_cls``
    learned class embeddings are appended, ``n_layers`` pre-norm transformer
    blocks run on both, and masks are the cosine similarities of the
    projected patch and class features, LayerNorm-ed over classes.

    Args:
        in_channels: encoder width (d_encoder).
        num_classes: n_cls.
        d_model: decoder width (also ``channels``).
        n_layers: decoder blocks.
        n_heads: attention heads (Segmenter sets d_model // 64).
        d_ff: MLP hidden width (default 4 * d_model).
        drop_path_rate: stochastic depth over the blocks.
        dropout: dropout in attention and MLP (Segmenter trains with 0.1).
        norm_eps: LayerNorm epsilon (PyTorch default 1e-5, as Segmenter).
        kwargs: :class:`mmseg.models.decode_heads.decode_head.BaseDecodeHead`
            arguments (``loss_decode``, ``align_corners``, ``in_index`` ...).
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 d_model: int = 1024,
                 n_layers: int = 2,
                 n_heads: Optional[int] = None,
                 d_ff: Optional[int] = None,
                 drop_path_rate: float = 0.0,
                 dropout: float = 0.1,
                 norm_eps: float = 1e-5,
                 **kwargs):
        kwargs.setdefault('channels', d_model)
        if kwargs['channels'] != d_model:
            raise ValueError(f'SegmenterMaskHead: channels '
                             f'({kwargs["channels"]}) must equal d_model '
                             f'({d_model})')
        kwargs.setdefault('dropout_ratio', 0.0)
        # the base class' default init_cfg targets conv_seg, removed below
        kwargs.setdefault('init_cfg', None)
        super().__init__(in_channels=in_channels, num_classes=num_classes,
                         **kwargs)
        del self.conv_seg  # masks come from the class embeddings
        self._build_mask_transformer(in_channels, num_classes, d_model,
                                     n_layers, n_heads, d_ff, drop_path_rate,
                                     dropout, norm_eps)

    def init_weights(self):
        if self.init_cfg is not None:
            return super().init_weights()
        self._init_mask_transformer()

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Backbone maps -> (B, n_cls, h, w) mask logits."""
        x = self._transform_inputs(inputs)
        B, _, h, w = x.shape
        masks = self.mask_logits(x.flatten(2).transpose(1, 2))
        return masks.transpose(1, 2).reshape(B, self.n_cls, h, w)
