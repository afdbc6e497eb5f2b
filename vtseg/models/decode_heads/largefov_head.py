"""LargeFOV segmentation head (DeepLab-LargeFOV style), ToCo's head
(docs/toco.md)."""
import torch.nn as nn
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from vtseg.registry import MODELS

__all__ = ['LargeFOVHead']


@MODELS.register_module()
class LargeFOVHead(BaseDecodeHead):
    """3x3 conv (dilation ``dilation``) + ReLU, 3x3 conv (same dilation) +
    ReLU, 1x1 conv to ``num_classes``; all bias-free (the ToCo head). Runs
    at the token stride.

    Args:
        dilation: dilation (and padding) of both 3x3 convolutions (5).
        **kwargs: :class:`mmseg.models.decode_heads.BaseDecodeHead` args
            (``in_channels``, ``channels`` (512), ``num_classes``, ...).

    Shapes: (B, in_channels, h, w) -> (B, num_classes, h, w).
    """

    def __init__(self, dilation: int = 5, **kwargs):
        kwargs.setdefault('in_index', -1)
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(**kwargs)
        self.convs = nn.Sequential(
            nn.Conv2d(self.in_channels, self.channels, 3, padding=dilation,
                      dilation=dilation, bias=False), nn.ReLU(inplace=True),
            nn.Conv2d(self.channels, self.channels, 3, padding=dilation,
                      dilation=dilation, bias=False), nn.ReLU(inplace=True))
        self.conv_seg = nn.Conv2d(self.channels, self.out_channels, 1,
                                  bias=False)

    def forward(self, inputs) -> Tensor:
        x = self._transform_inputs(inputs)
        return self.cls_seg(self.convs(x))
