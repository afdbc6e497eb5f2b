"""Simple feature pyramid from a plain ViT's last map (ViTDet).

ViTDet (Li et al., ECCV 2022) builds the detector's pyramid from the last
feature map of a plain ViT alone: deconvolutions for the finer levels,
identity and max pooling for the coarser ones, then a 1x1 and a 3x3
convolution per level. See docs/detection.md.
"""
import math
from typing import List, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from vtseg.registry import MODELS

__all__ = ['LayerNorm2d', 'SimpleFPN']


@MODELS.register_module()
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map (ViTDet's LN)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == 'LN':
        return LayerNorm2d(channels, eps=1e-6)
    if kind == 'GN':
        return nn.GroupNorm(32 if channels % 32 == 0 else 1, channels)
    if kind == 'BN':
        return nn.BatchNorm2d(channels)
    raise ValueError(f"SimpleFPN: norm must be 'LN', 'GN' or 'BN', got "
                     f'{kind!r}')


@MODELS.register_module()
class SimpleFPN(BaseModule):
    """ViTDet's simple feature pyramid on the last backbone map.

    The input map (stride ``in_stride`` in pixels, the ViT patch size) is
    first resampled bilinearly to stride ``base_stride`` when the two differ
    (patch 14 -> 16, so that the levels have the strides 4/8/16/32 that mmdet's
    anchor generators and RoI extractors expect; output size
    ``ceil(H * in_stride / base_stride)``). Each ``scale_factors`` entry then
    gives one level of stride ``base_stride / scale``: 4 = two stride-2
    deconvolutions with a norm and GELU between, 2 = one deconvolution,
    1 = identity, 0.5 = 2x2 max pooling; each level gets a 1x1 and a 3x3
    convolution with norm (``norm``). ``num_outs`` above the number of
    scales adds levels by stride-2 max pooling of the last one (P6, as the
    ViTDet RPN uses).

    Args:
        in_channels: channels of the backbone map (ViT width).
        out_channels: channels of every level.
        scale_factors: level scales relative to ``base_stride``.
        num_outs: number of returned levels (>= ``len(scale_factors)``).
        in_stride: stride of the input map in pixels.
        base_stride: stride that scale 1 stands for.
        norm: ``'LN'`` (ViTDet), ``'GN'`` or ``'BN'``.
        in_index: which backbone output to use (default the last).

    Shapes: inputs a tuple/list of (B, C_in, H, W) maps; returns a tuple of
    ``num_outs`` maps (B, out_channels, H_l, W_l), finest first.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 256,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
                 num_outs: int = 5,
                 in_stride: int = 16,
                 base_stride: int = 16,
                 norm: str = 'LN',
                 in_index: int = -1,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if num_outs < len(scale_factors):
            raise ValueError(f'SimpleFPN: num_outs={num_outs} is less than '
                             f'the {len(scale_factors)} scale factors')
        self.in_stride = in_stride
        self.base_stride = base_stride
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.num_outs = num_outs
        self.in_index = in_index
        self.stages = nn.ModuleList()
        for scale in self.scale_factors:
            layers: List[nn.Module] = []
            dim = in_channels
            if scale == 4.0:
                layers = [
                    nn.ConvTranspose2d(dim, dim // 2, 2, stride=2),
                    _norm(norm, dim // 2), nn.GELU(),
                    nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2)
                ]
                dim //= 4
            elif scale == 2.0:
                layers = [nn.ConvTranspose2d(dim, dim // 2, 2, stride=2)]
                dim //= 2
            elif scale == 1.0:
                layers = []
            elif scale == 0.5:
                layers = [nn.MaxPool2d(2, stride=2)]
            else:
                raise ValueError(f'SimpleFPN: scale factor {scale} is not '
                                 'one of 4, 2, 1, 0.5')
            layers += [
                nn.Conv2d(dim, out_channels, 1, bias=False),
                _norm(norm, out_channels),
                nn.Conv2d(out_channels, out_channels, 3, padding=1,
                          bias=False),
                _norm(norm, out_channels)
            ]
            self.stages.append(nn.Sequential(*layers))

    def resample(self, x: Tensor) -> Tensor:
        """(B, C, H, W) at ``in_stride`` -> (B, C, H', W') at
        ``base_stride`` (identity when they are equal)."""
        if self.in_stride == self.base_stride:
            return x
        h, w = x.shape[-2:]
        size = (math.ceil(h * self.in_stride / self.base_stride),
                math.ceil(w * self.in_stride / self.base_stride))
        return F.interpolate(x, size=size, mode='bilinear',
                             align_corners=False)

    def forward(self, inputs: Union[Tensor, Sequence[Tensor]]
                ) -> Tuple[Tensor, ...]:
        x = inputs if isinstance(inputs, Tensor) else inputs[self.in_index]
        x = self.resample(x)
        outs = [stage(x) for stage in self.stages]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
