"""ConnNet-style connectivity decode head for plain ViTs, and its binary
control with the same body.

Body (shared, :class:`CascadeRelationHead`):

1. lateral 1x1 ConvModules project each selected backbone level (ViT blocks
   give equal-size maps) to the cascade width;
2. the deepest level goes through a long-range relation block (non-local,
   embedded Gaussian, mmcv ``NonLocal2d``) over the whole token grid;
3. cascade from deep to shallow: at each step the running map is upsampled
   x2 (bilinear) and fused (concat + 3x3 ConvModule) with the next shallower
   level resized to that size, so shallower levels enter at finer scales
   (ConnNet's multi-level cascade contexts);
4. a 3x3 ConvModule and the 1x1 classifier ``conv_seg``.

With L levels the output stride is ``patch_size / 2**(L-1)`` (ViT-S/14,
3 levels as in ``configs/connnet``: 3.5 px, a 64x64 map for a 224x224
input; 4 levels: 1.75 px, 128x128).

:class:`ConnNetHead` predicts ``K * 8 * len(dilations)`` connectivity logits
(K = 1 for binary / salient segmentation), trains them with
:class:`~vtseg.models.losses.ConnectivityLoss` after bilinear upsampling to
label size (docs/methods/connectivity.md#losses) and decodes at test time by
sigmoid + bilateral voting at input size. For the one-class case the
continuous voted map F is returned as the logit ``log(F / (1 - F))`` (F
clamped to [1e-6, 1 - 1e-6]), so mmseg's ``EncoderDecoder`` (which applies a
sigmoid to one-channel outputs) stores F itself in ``seg_logits`` and
``pred_sem_seg = F > 0.5`` with ``threshold=0.5``: the head is a drop-in
mmseg decode head.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, NonLocal2d
from mmengine.model import BaseModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from torch import Tensor

from vtseg.functional.connectivity import connectivity_decode
from vtseg.registry import MODELS

__all__ = ['CascadeRelationHead', 'ConnNetHead', 'ConnectivityHead']


def _loss_by_feat(loss_decode, seg_logits: Tensor, batch_data_samples,
                  align_corners: bool, ignore_index: int) -> dict:
    """mmseg's ``loss_by_feat`` (logits upsampled bilinearly to label size)
    where a loss module may also return a dict of named terms."""
    seg_label = torch.stack(
        [s.gt_sem_seg.data for s in batch_data_samples], dim=0)
    seg_logits = resize(seg_logits, size=seg_label.shape[2:],
                        mode='bilinear', align_corners=align_corners)
    seg_label = seg_label.squeeze(1)
    losses = dict()
    modules = loss_decode if isinstance(loss_decode,
                                        nn.ModuleList) else [loss_decode]
    for module in modules:
        out = module(seg_logits, seg_label, weight=None,
                     ignore_index=ignore_index)
        if not isinstance(out, dict):
            out = {module.loss_name: out}
        for k, v in out.items():
            losses[k] = losses[k] + v if k in losses else v
    return losses


@MODELS.register_module()
class CascadeRelationHead(BaseDecodeHead):
    """Multi-level cascade with a long-range relation block (see the module
    docstring); used as it is, it is the plain binary / semantic head of the
    same budget as :class:`ConnNetHead` (``conv_seg`` has ``out_channels``
    outputs, mmseg's ``loss_decode`` applies).

    Args:
        in_channels: channels of each selected level (sequence, shallow to
            deep, matching ``in_index``).
        in_index: backbone output levels used, shallow to deep.
        cascade_channels: width of the map after each cascade step, deepest
            first (one entry per level); ``channels`` must equal the last.
        relation: ``'nonlocal'`` (default) or None (no relation block).
        relation_reduction: channel reduction inside the non-local block.
        upsample_per_level: double the resolution at every cascade step
            (default); False keeps the token grid size throughout.
        **kwargs: :class:`mmseg.models.decode_heads.BaseDecodeHead` args
            (``channels``, ``num_classes``, ``out_channels``, ``threshold``,
            ``norm_cfg``, ``loss_decode``, ...). ``input_transform`` is
            always ``'multiple_select'``.

    Shapes: levels (B, C_i, h, w) -> (B, out_channels, h * 2**(L-1),
    w * 2**(L-1)) (or (h, w) without per-level upsampling).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 in_index: Sequence[int],
                 cascade_channels: Sequence[int] = (128, 96, 64, 32),
                 relation: Optional[str] = 'nonlocal',
                 relation_reduction: int = 2,
                 upsample_per_level: bool = True,
                 **kwargs):
        if isinstance(in_channels, int) or isinstance(in_index, int):
            raise ValueError(f'{type(self).__name__}: in_channels and '
                             'in_index must be sequences (one entry per '
                             'backbone level)')
        if len(in_channels) != len(in_index):
            raise ValueError(f'{type(self).__name__}: {len(in_channels)} '
                             f'in_channels for {len(in_index)} in_index')
        if len(cascade_channels) != len(in_index):
            raise ValueError(f'{type(self).__name__}: cascade_channels needs '
                             f'one entry per level ({len(in_index)}), got '
                             f'{len(cascade_channels)}')
        kwargs.setdefault('norm_cfg', dict(type='BN', requires_grad=True))
        kwargs['input_transform'] = 'multiple_select'
        super().__init__(in_channels=list(in_channels),
                         in_index=list(in_index), **kwargs)
        if self.channels != cascade_channels[-1]:
            raise ValueError(f'{type(self).__name__}: channels='
                             f'{self.channels} must equal the last '
                             f'cascade_channels entry {cascade_channels[-1]}')
        if relation not in ('nonlocal', None):
            raise ValueError(f"{type(self).__name__}: relation must be "
                             f"'nonlocal' or None, got {relation!r}")
        self.upsample_per_level = upsample_per_level
        conv = dict(conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                    act_cfg=self.act_cfg)
        deep_first = list(reversed(list(self.in_channels)))
        # lateral projections, deepest first; deeper levels get the wider
        # cascade width of the step they join
        self.laterals = nn.ModuleList([
            ConvModule(c_in, c_out, 1, **conv)
            for c_in, c_out in zip(deep_first, cascade_channels)
        ])
        self.relation = NonLocal2d(
            cascade_channels[0], reduction=relation_reduction,
            use_scale=True, mode='embedded_gaussian',
            norm_cfg=self.norm_cfg) if relation == 'nonlocal' else None
        self.fuse = nn.ModuleList([
            ConvModule(cascade_channels[i - 1] + cascade_channels[i],
                       cascade_channels[i], 3, padding=1, **conv)
            for i in range(1, len(cascade_channels))
        ])
        self.out_conv = ConvModule(cascade_channels[-1], self.channels, 3,
                                   padding=1, **conv)

    def _forward_feature(self, inputs) -> Tensor:
        """Levels -> (B, channels, H', W') feature map before conv_seg."""
        feats = self._transform_inputs(inputs)[::-1]  # deepest first
        x = self.laterals[0](feats[0])
        if self.relation is not None:
            x = self.relation(x)
        for i in range(1, len(feats)):
            if self.upsample_per_level:
                x = resize(x, scale_factor=2, mode='bilinear',
                           align_corners=self.align_corners)
            lat = self.laterals[i](feats[i])
            if lat.shape[-2:] != x.shape[-2:]:
                lat = resize(lat, size=x.shape[-2:], mode='bilinear',
                             align_corners=self.align_corners)
            x = self.fuse[i - 1](torch.cat([x, lat], dim=1))
        return self.out_conv(x)

    def forward(self, inputs) -> Tensor:
        return self.cls_seg(self._forward_feature(inputs))

    def loss_by_feat(self, seg_logits: Tensor, batch_data_samples) -> dict:
        """mmseg's loss, but a loss module may return a dict of terms."""
        return _loss_by_feat(self.loss_decode, seg_logits, batch_data_samples,
                             self.align_corners, self.ignore_index)


class _ConnectivityOutputs:
    """Link outputs shared by :class:`ConnNetHead` and
    :class:`ConnectivityHead`: the classifier predicts
    ``K * 8 * len(dilations)`` link logits; test-time decoding by voting."""

    def _init_links(self, conv_seg: nn.Conv2d, out_channels: int,
                    dilations: Sequence[int], decode: Optional[str],
                    loss_decode) -> nn.Conv2d:
        name = type(self).__name__
        self.dilations = tuple(dilations)
        self.num_conn_classes = 1 if out_channels == 1 else out_channels
        if decode is None:
            decode = 'soft' if self.num_conn_classes == 1 else 'multiclass'
        one = ('soft', 'binary')
        multi = ('multiclass', 'multiclass_probs')
        if (self.num_conn_classes == 1 and decode not in one) or (
                self.num_conn_classes > 1 and decode not in multi):
            raise ValueError(
                f'{name}: decode={decode!r} does not fit '
                f'{self.num_conn_classes} class(es); use {one} for one class '
                f'(out_channels=1) and {multi} for several')
        self.decode = decode
        losses = loss_decode if isinstance(loss_decode,
                                           nn.ModuleList) else [loss_decode]
        for module in losses:
            dil = getattr(module, 'dilations', None)
            if dil is not None and tuple(dil) != self.dilations:
                raise ValueError(f'{name}: dilations {self.dilations} differ '
                                 f'from the loss dilations {dil}')
        self.num_link_channels = self.num_conn_classes * 8 * len(
            self.dilations)
        # the classifier predicts links instead of classes
        return nn.Conv2d(conv_seg.in_channels, self.num_link_channels, 1)

    def predict_conn(self, conn_logits: Tensor,
                     size: Tuple[int, int]) -> Tensor:
        """Link logits (B, K*8*J, h, w) -> voted map (B, K, *size), decoded
        as configured (probabilities for one class, voted logits for
        ``'multiclass'``)."""
        conn_logits = resize(conn_logits, size=size, mode='bilinear',
                             align_corners=self.align_corners)
        return connectivity_decode(conn_logits.float(), self.dilations,
                                   self.decode)

    def predict_by_feat(self, seg_logits: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        """Link logits -> (B, out_channels, H_in, W_in) map for mmseg's
        postprocess (one class: ``logit(F)``; K classes: voted map)."""
        meta = batch_img_metas[0]
        if isinstance(meta['img_shape'], torch.Size):
            size = meta['img_shape']  # slide inference
        elif 'pad_shape' in meta:
            size = meta['pad_shape'][:2]
        else:
            size = meta['img_shape']
        voted = self.predict_conn(seg_logits, tuple(size))
        if self.num_conn_classes == 1:
            return torch.logit(voted, eps=1e-6)
        return voted


@MODELS.register_module()
class ConnNetHead(_ConnectivityOutputs, CascadeRelationHead):
    """Connectivity head: the :class:`CascadeRelationHead` body predicting
    ``K * 8 * len(dilations)`` link logits
    (docs/methods/connectivity.md#labels), channel ``(k * J + j) * 8 + d`` as
    in :func:`vtseg.functional.mask_to_connectivity`.

    Configure binary / salient segmentation with ``num_classes=2,
    out_channels=1, threshold=0.5`` (K = 1: links of the foreground) and
    multi-class with ``num_classes=out_channels=K`` (links of every class,
    background included, DconnNet's layout). The loss (``loss_decode``)
    receives the link logits upsampled bilinearly to label size; the
    default is ``ConnectivityLoss(variant='bicon')``.

    Test time (``predict_by_feat``): logits upsampled bilinearly to the
    input size, then

    * one class: ``decode='soft'`` (default): sigmoid, bilateral voting, a
      continuous map F in [0, 1], returned as ``logit(F)`` (see the module
      docstring) so that mmseg's sigmoid gives back F; ``'binary'``:
      thresholded links (DconnNet), F in {0, 1};
    * K classes: ``decode='multiclass'`` (DconnNet: vote on raw logits) or
      ``'multiclass_probs'`` (vote on sigmoid probabilities); the (B, K, H,
      W) voted map is returned for mmseg's argmax.

    Args:
        dilations: link distances (``(1,)``: the 8-neighbourhood; extra
            dilations are experimental, docs/methods/connectivity.md#labels).
        decode: see above; None picks ``'soft'`` for one class and
            ``'multiclass'`` otherwise.
        **kwargs: :class:`CascadeRelationHead` args.
    """

    def __init__(self,
                 dilations: Sequence[int] = (1, ),
                 decode: Optional[str] = None,
                 loss_decode=dict(type='ConnectivityLoss', variant='bicon'),
                 **kwargs):
        super().__init__(loss_decode=loss_decode, **kwargs)
        self.conv_seg = self._init_links(self.conv_seg, self.out_channels,
                                         dilations, decode, self.loss_decode)


@MODELS.register_module()
class ConnectivityHead(_ConnectivityOutputs, BaseModule):
    """Turn any mmseg decode head into a connectivity head: its ``conv_seg``
    is replaced by a 1x1 conv with ``K * 8 * len(dilations)`` outputs, the
    loss is ``loss_decode`` (default ``ConnectivityLoss('bicon')``) on the
    link logits upsampled to label size, and prediction decodes by voting
    exactly as :class:`ConnNetHead` does (drop-in for mmseg's
    ``EncoderDecoder``).

    Args:
        head: config of the wrapped head (any
            :class:`~mmseg.models.decode_heads.BaseDecodeHead` with a
            ``conv_seg``), e.g. ``dict(type='FCNHead', in_channels=384,
            channels=128, num_classes=2, out_channels=1, threshold=0.5)``;
            its own ``loss_decode`` is replaced.
        dilations, decode: as :class:`ConnNetHead`.
        loss_decode: loss config(s).
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 head: dict,
                 dilations: Sequence[int] = (1, ),
                 decode: Optional[str] = None,
                 loss_decode=dict(type='ConnectivityLoss', variant='bicon'),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        head = dict(head)
        head['loss_decode'] = loss_decode
        self.head = MODELS.build(head)
        if not isinstance(getattr(self.head, 'conv_seg', None), nn.Conv2d):
            raise ValueError(f'ConnectivityHead: the wrapped head '
                             f'{head.get("type")} has no conv_seg classifier')
        for attr in ('align_corners', 'num_classes', 'out_channels',
                     'threshold', 'ignore_index'):
            setattr(self, attr, getattr(self.head, attr))
        self.loss_decode = self.head.loss_decode
        self.head.conv_seg = self._init_links(self.head.conv_seg,
                                              self.out_channels, dilations,
                                              decode, self.loss_decode)

    def forward(self, inputs) -> Tensor:
        return self.head(inputs)

    def loss(self, inputs, batch_data_samples, train_cfg) -> dict:
        return self.loss_by_feat(self.forward(inputs), batch_data_samples)

    def loss_by_feat(self, seg_logits: Tensor, batch_data_samples) -> dict:
        return _loss_by_feat(self.loss_decode, seg_logits, batch_data_samples,
                             self.align_corners, self.ignore_index)

    def predict(self, inputs, batch_img_metas: List[dict],
                test_cfg) -> Tensor:
        return self.predict_by_feat(self.forward(inputs), batch_img_metas)
