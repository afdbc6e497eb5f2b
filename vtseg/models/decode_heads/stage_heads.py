"""DToP stage heads: grade the active tokens at the end of a ViT stage
(docs/dtop.md, docs/methods/dtop.md).

Every stage head follows :class:`BaseStageHead`: it maps the active patch
tokens (B, M, C) (a packed token set with a ``valid`` mask, or all tokens)
to per-class mask logits (B, K, M) and optional per-class presence logits
(B, K, 2); :meth:`BaseStageHead.class_probs` turns them into the per-class
confidences in [0, 1] that the pruning rule and the final prediction use;
:meth:`BaseStageHead.loss` scores a full (B, K, H, W) logit canvas against
the labels; :meth:`BaseStageHead.flops` reports the head's multiply-adds on
M tokens. No head keeps state between calls: the segmentor passes
everything explicitly.

Three heads ship: :class:`ATMStageHead` (SegViT's attention-to-mask, the
reference's head), :class:`MaskTransformerStageHead` (Segmenter) and
:class:`LinearStageHead` (SETR-naive).
"""
from typing import Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.losses.dice_loss import dice_loss
from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor

from vtseg.functional.dtop import atm_class_probs
from vtseg.registry import MODELS
from ..layers import init_transformer_weights
from .segmenter_mask_head import MaskTransformerMixin

__all__ = [
    'StageOutput', 'BaseStageHead', 'ATMStageHead',
    'MaskTransformerStageHead', 'LinearStageHead'
]


class StageOutput(NamedTuple):
    """What a stage head returns for the active tokens.

    Attributes:
        mask_logits: (B, K, M) per-class logits of each token.
        presence: (B, K, 2) logits of (class present, no object) per class
            query (ATM), or None.
    """
    mask_logits: Tensor
    presence: Optional[Tensor] = None


class BaseStageHead(BaseModule):
    """Interface of DToP stage heads.

    Args:
        in_channels: token width C.
        num_classes: K.
        align_corners: for resizing logits (mmseg's segmentor reads it).
        ignore_index: label ignored by the losses.
        loss_weight: factor on every loss of this head.
    """
    has_presence = False

    def __init__(self, in_channels: int, num_classes: int,
                 align_corners: bool = False, ignore_index: int = 255,
                 loss_weight: float = 1.0, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1:
            raise ValueError(f'{type(self).__name__}: num_classes must be '
                             f'>= 1, got {num_classes}')
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.out_channels = num_classes  # mmseg's EncoderDecoder reads it
        self.align_corners = align_corners
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight

    def forward(self, tokens: Tensor,
                valid: Optional[Tensor] = None) -> StageOutput:
        """(B, M, C) active patch tokens (``valid`` (B, M) bool marks
        padding) -> :class:`StageOutput`."""
        raise NotImplementedError

    def class_probs(self, mask_logits: Tensor,
                    presence: Optional[Tensor] = None) -> Tensor:
        """(B, K, ...) logits (and presence) -> per-class confidences in
        [0, 1]; default: softmax over classes."""
        return mask_logits.softmax(dim=1)

    def loss(self, logits: Tensor, presence: Optional[Tensor],
             labels: Tensor) -> Dict[str, Tensor]:
        """Losses of one head.

        Args:
            logits: (B, K, H, W) logit canvas at label resolution.
            presence: (B, K, 2) presence logits or None.
            labels: (B, H, W) int64 class ids, ``ignore_index`` ignored.
        """
        raise NotImplementedError

    def flops(self, num_tokens: int) -> int:
        """Multiply-adds of one forward on ``num_tokens`` tokens of one
        image, with the FLOP counter's conventions (docs/analysis_tools.md):
        linear layers and attention products as multiply-adds, LayerNorm 5
        per element, other elementwise operations 0."""
        raise NotImplementedError


def _cross_entropy(logits: Tensor, labels: Tensor,
                   ignore_index: int) -> Tensor:
    """Mean cross-entropy over non-ignored pixels; 0 (with a gradient path)
    when every pixel is ignored."""
    valid = labels != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, ignore_index=ignore_index)


# ---------------------------------------------------------------- ATM
class _CrossAttention(nn.Module):
    """Multi-head cross-attention that also returns the head-averaged,
    scaled attention logits (SegViT's masks). Parameter names ``q``, ``k``,
    ``v``, ``proj`` as SegViT."""

    def __init__(self, dim: int, num_heads: int, attn_drop: float = 0.1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'ATM: channels={dim} is not divisible by '
                             f'num_heads={num_heads}')
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(attn_drop)

    def forward(self, query: Tensor, memory: Tensor,
                key_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """query (B, K, D), memory (B, M, D), key_mask (B, M) bool ->
        ((B, K, D), (B, K, M) head-averaged attention logits)."""
        B, K, D = query.shape
        M = memory.shape[1]
        h = self.num_heads
        q = self.q(query).reshape(B, K, h, D // h).transpose(1, 2)
        k = self.k(memory).reshape(B, M, h, D // h).transpose(1, 2)
        v = self.v(memory).reshape(B, M, h, D // h).transpose(1, 2)
        logits = (q @ k.transpose(-2, -1)) * self.scale  # (B, h, K, M)
        attn = logits
        if key_mask is not None:
            attn = attn.masked_fill(~key_mask[:, None, None, :],
                                    float('-inf'))
        attn = self.attn_drop(attn.softmax(dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(B, K, D)
        return self.proj(out), logits.mean(dim=1)


class _ATMLayer(nn.Module):
    """Post-norm decoder layer: query self-attention, cross-attention to
    the tokens (whose logits are the masks), FFN (ReLU). Names follow
    ``torch.nn.TransformerDecoderLayer`` as in SegViT."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads,
                                               dropout=dropout,
                                               batch_first=True)
        self.multihead_attn = _CrossAttention(dim, num_heads, dropout)
        self.linear1 = nn.Linear(dim, 4 * dim)
        self.linear2 = nn.Linear(4 * dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, q: Tensor, memory: Tensor,
                key_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        q = self.norm1(q + self.dropout1(
            self.self_attn(q, q, q, need_weights=False)[0]))
        upd, logits = self.multihead_attn(q, memory, key_mask)
        q = self.norm2(q + self.dropout2(upd))
        q = self.norm3(q + self.dropout3(
            self.linear2(self.dropout(F.relu(self.linear1(q))))))
        return q, logits


@MODELS.register_module()
class ATMStageHead(BaseStageHead):
    """SegViT's attention-to-mask head as a DToP stage head.

    One learned query per class attends to the projected tokens through
    ``num_layers`` post-norm decoder layers; the last layer's (scaled,
    head-averaged) cross-attention logits are the class masks (B, K, M), and
    a linear layer on each query gives its presence logits (present, no
    object). Confidence: ``softmax(presence)[0] * sigmoid(mask)``.

    Args:
        in_channels: token width C.
        num_classes: K.
        channels: decoder width (default ``in_channels // 2``, as DToP).
        num_layers: decoder layers (3 in DToP).
        num_heads: attention heads (6 for ADE20K ViT-B, 8 ViT-L, 16 for
            Pascal Context / COCO-Stuff in the reference configs).
        dropout: dropout in the decoder layers (0.1, PyTorch's default).
        mask_weight / dice_weight / cls_weight: loss weights (20 / 1 / 1).
        no_object_weight: cross-entropy weight of the "no object" target
            (0.1).
        faithful_ignore: count ignored pixels as negatives of every class
            mask, as the reference's loss does (default: leave them out).
        **kwargs: :class:`BaseStageHead` arguments.

    Parameter names follow SegViT (``input_proj``, ``proj_norm``,
    ``decoder.layers.{i}``, ``q``, ``class_embed``).
    """
    has_presence = True

    def __init__(self, in_channels: int, num_classes: int,
                 channels: Optional[int] = None, num_layers: int = 3,
                 num_heads: int = 6, dropout: float = 0.1,
                 mask_weight: float = 20.0, dice_weight: float = 1.0,
                 cls_weight: float = 1.0, no_object_weight: float = 0.1,
                 faithful_ignore: bool = False, **kwargs):
        super().__init__(in_channels, num_classes, **kwargs)
        dim = channels or in_channels // 2
        if num_layers < 1:
            raise ValueError(f'ATMStageHead: num_layers must be >= 1, got '
                             f'{num_layers}')
        self.channels = dim
        self.input_proj = nn.Linear(in_channels, dim)
        self.proj_norm = nn.LayerNorm(dim)
        self.decoder = nn.Module()
        self.decoder.layers = nn.ModuleList(
            [_ATMLayer(dim, num_heads, dropout) for _ in range(num_layers)])
        self.q = nn.Embedding(num_classes, dim)
        self.class_embed = nn.Linear(dim, 2)
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight
        self.cls_weight = cls_weight
        self.no_object_weight = no_object_weight
        self.faithful_ignore = faithful_ignore

    def init_weights(self):
        if self.init_cfg is not None:
            return super().init_weights()
        init_transformer_weights(self)  # trunc-normal linears, unit norms
        for m in self.modules():
            if isinstance(m, nn.MultiheadAttention):
                trunc_normal_(m.in_proj_weight, std=0.02)
                nn.init.zeros_(m.in_proj_bias)

    def forward(self, tokens: Tensor,
                valid: Optional[Tensor] = None) -> StageOutput:
        B = tokens.shape[0]
        memory = self.proj_norm(self.input_proj(tokens))
        q = self.q.weight[None].expand(B, -1, -1)
        logits = None
        for layer in self.decoder.layers:
            q, logits = layer(q, memory, valid)
        return StageOutput(logits, self.class_embed(q))

    def class_probs(self, mask_logits: Tensor,
                    presence: Optional[Tensor] = None) -> Tensor:
        if presence is None:
            raise ValueError('ATMStageHead.class_probs needs the presence '
                             'logits')
        shape = mask_logits.shape
        probs = atm_class_probs(mask_logits.flatten(2), presence)
        return probs.view(shape)

    def loss(self, logits: Tensor, presence: Optional[Tensor],
             labels: Tensor) -> Dict[str, Tensor]:
        """SegViT's loss with queries matched to classes by index:
        presence cross-entropy (no-object weight 0.1) over every query, and
        for the classes in each image sigmoid focal (x20) + dice (x1) on the
        class's mask logits, averaged over the images' class masks."""
        B, K = logits.shape[:2]
        ignore = labels == self.ignore_index
        lab = labels.masked_fill(ignore, 0).flatten(1)
        counts = torch.zeros(B, K, dtype=torch.long, device=labels.device)
        counts.scatter_add_(1, lab, (~ignore).flatten(1).long())
        present = counts > 0
        target = (~present).long()  # 0 = present, 1 = no object
        weight = presence.new_tensor([1.0, self.no_object_weight])
        loss_ce = F.cross_entropy(presence.flatten(0, 1), target.flatten(),
                                  weight)
        b_idx, k_idx = present.nonzero(as_tuple=True)
        if len(b_idx) == 0:  # every pixel ignored: no mask to learn
            zero = logits.sum() * 0.0
            loss_mask = loss_dice = zero
        else:
            pred = logits[b_idx, k_idx].flatten(1)  # (P, H*W)
            tgt = (labels[b_idx] == k_idx[:, None, None]).flatten(1).float()
            keep = torch.ones_like(tgt) if self.faithful_ignore else \
                (~ignore[b_idx]).flatten(1).float()
            focal = py_sigmoid_focal_loss(pred, tgt, reduction='none')
            loss_mask = ((focal * keep).sum(1) /
                         keep.sum(1).clamp(min=1)).mean()
            loss_dice = dice_loss(pred.sigmoid() * keep, tgt * keep, eps=1.0,
                                  naive_dice=True, reduction='mean')
        w = self.loss_weight
        return dict(loss_ce=w * self.cls_weight * loss_ce,
                    loss_mask=w * self.mask_weight * loss_mask,
                    loss_dice=w * self.dice_weight * loss_dice)

    def flops(self, num_tokens: int) -> int:
        M, C, D, K = num_tokens, self.in_channels, self.channels, \
            self.num_classes
        total = M * C * D + 5 * M * D  # input projection and its norm
        per_layer = (4 * K * D * D + 2 * K * K * D  # self-attention
                     + 2 * K * D * D + 2 * M * D * D  # q, proj; k, v
                     + 2 * K * M * D  # logits and weighted sum
                     + 8 * K * D * D  # FFN
                     + 15 * K * D)  # three LayerNorms
        return total + len(self.decoder.layers) * per_layer + K * D * 2


# ------------------------------------------------------------ Segmenter
@MODELS.register_module()
class MaskTransformerStageHead(MaskTransformerMixin, BaseStageHead):
    """Segmenter's mask transformer as a DToP stage head (parameter names of
    :class:`~vtseg.models.decode_heads.SegmenterMaskHead`): class
    embeddings and the active tokens run through ``n_layers`` blocks
    (padding masked as keys); masks are cosine similarities. Confidence:
    softmax over classes; loss: cross-entropy.

    Args:
        in_channels, num_classes: C and K.
        d_model, n_layers, n_heads, d_ff, drop_path_rate, dropout, norm_eps:
            as :class:`~vtseg.models.decode_heads.SegmenterMaskHead`.
        **kwargs: :class:`BaseStageHead` arguments.
    """

    def __init__(self, in_channels: int, num_classes: int,
                 d_model: int = 192, n_layers: int = 1,
                 n_heads: Optional[int] = None, d_ff: Optional[int] = None,
                 drop_path_rate: float = 0.0, dropout: float = 0.0,
                 norm_eps: float = 1e-5, **kwargs):
        super().__init__(in_channels, num_classes, **kwargs)
        self._build_mask_transformer(in_channels, num_classes, d_model,
                                     n_layers, n_heads, d_ff, drop_path_rate,
                                     dropout, norm_eps)
        self.d_ff = d_ff or 4 * d_model

    def init_weights(self):
        if self.init_cfg is not None:
            return super().init_weights()
        self._init_mask_transformer()

    def forward(self, tokens: Tensor,
                valid: Optional[Tensor] = None) -> StageOutput:
        return StageOutput(self.mask_logits(tokens, valid).transpose(1, 2))

    def loss(self, logits: Tensor, presence: Optional[Tensor],
             labels: Tensor) -> Dict[str, Tensor]:
        return dict(loss_ce=self.loss_weight *
                    _cross_entropy(logits, labels, self.ignore_index))

    def flops(self, num_tokens: int) -> int:
        M, C, D, K = num_tokens, self.in_channels, self.d_model, self.n_cls
        T = M + K
        blocks = len(self.blocks) * (10 * T * D + 4 * T * D * D +
                                     2 * T * T * D + 2 * T * D * self.d_ff)
        return (M * C * D + blocks + 5 * T * D + (M + K) * D * D +
                M * K * D + 5 * M * K)


# ----------------------------------------------------------- SETR-naive
@MODELS.register_module()
class LinearStageHead(BaseStageHead):
    """SETR-naive-style per-token classifier as a DToP stage head:
    LayerNorm, then a linear layer to K classes (``channels=None``) or
    linear -> ReLU -> linear through ``channels`` (SETR-naive's two 1x1
    convolutions, with LayerNorm instead of BatchNorm so that padding in a
    packed token set never enters the statistics). Confidence: softmax over
    classes; loss: cross-entropy.

    Args:
        in_channels, num_classes: C and K.
        channels: hidden width, or None for a single linear layer.
        **kwargs: :class:`BaseStageHead` arguments.
    """

    def __init__(self, in_channels: int, num_classes: int,
                 channels: Optional[int] = None, **kwargs):
        super().__init__(in_channels, num_classes, **kwargs)
        self.channels = channels
        self.norm = nn.LayerNorm(in_channels)
        if channels:
            self.fc = nn.Sequential(nn.Linear(in_channels, channels),
                                    nn.ReLU(inplace=True),
                                    nn.Linear(channels, num_classes))
        else:
            self.fc = nn.Linear(in_channels, num_classes)

    def init_weights(self):
        if self.init_cfg is not None:
            return super().init_weights()
        init_transformer_weights(self)

    def forward(self, tokens: Tensor,
                valid: Optional[Tensor] = None) -> StageOutput:
        return StageOutput(self.fc(self.norm(tokens)).transpose(1, 2))

    def loss(self, logits: Tensor, presence: Optional[Tensor],
             labels: Tensor) -> Dict[str, Tensor]:
        return dict(loss_ce=self.loss_weight *
                    _cross_entropy(logits, labels, self.ignore_index))

    def flops(self, num_tokens: int) -> int:
        C, K = self.in_channels, self.num_classes
        if self.channels:
            return num_tokens * (5 * C + C * self.channels +
                                 self.channels * K)
        return num_tokens * (5 * C + C * K)
