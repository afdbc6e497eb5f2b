"""Data preprocessors of TokenCut (docs/methods/tokencut.md).

* :class:`TokenCutDataPreProcessor`: images, normalised then zero-padded per
  batch (images of different sizes may share a batch).
* :class:`VideoDataPreProcessor`: clips kept as uint8 until the model
  normalises a few frames at a time (bounded memory).
"""
import math

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor
from mmseg.models.data_preprocessor import SegDataPreProcessor
from torch import Tensor

from vtseg.registry import MODELS

__all__ = ['TokenCutDataPreProcessor', 'VideoDataPreProcessor']


@MODELS.register_module()
class TokenCutDataPreProcessor(SegDataPreProcessor):
    """mmseg data preprocessor for TokenCut: normalise, then zero-pad (in
    normalised space, bottom / right, as the reference) every image of a batch
    to a common size divisible by ``size_divisor`` (the patch size). Unlike
    mmseg's test path, images of different sizes may share a batch; the model
    crops each back to its own ``img_shape`` so results never depend on the
    batch (R2 in docs/methods/README.md#common-requirements)."""

    def __init__(self, size_divisor: int = 16, **kwargs):
        kwargs.setdefault('mean', [123.675, 116.28, 103.53])
        kwargs.setdefault('std', [58.395, 57.12, 57.375])
        kwargs.setdefault('bgr_to_rgb', True)
        kwargs.setdefault('pad_val', 0)
        super().__init__(size_divisor=size_divisor, **kwargs)

    def forward(self, data: dict, training: bool = False) -> dict:
        if training:
            return super().forward(data, training)
        data = self.cast_data(data)
        inputs = data['inputs']
        samples = data.get('data_samples', None)
        if self.channel_conversion and inputs[0].size(0) == 3:
            inputs = [x[[2, 1, 0], ...] for x in inputs]
        inputs = [x.float() for x in inputs]
        if self._enable_normalize:
            inputs = [(x - self.mean) / self.std for x in inputs]
        d = self.size_divisor or 1
        hmax = max(x.shape[-2] for x in inputs)
        wmax = max(x.shape[-1] for x in inputs)
        hmax, wmax = math.ceil(hmax / d) * d, math.ceil(wmax / d) * d
        padded = [
            F.pad(x, (0, wmax - x.shape[-1], 0, hmax - x.shape[-2]),
                  value=self.pad_val) for x in inputs
        ]
        if samples is not None:
            for s, x in zip(samples, inputs):
                if 'img_shape' not in s:
                    s.set_metainfo(dict(img_shape=tuple(x.shape[-2:])))
                if 'ori_shape' not in s:
                    s.set_metainfo(dict(ori_shape=tuple(x.shape[-2:])))
                s.set_metainfo(dict(pad_shape=(hmax, wmax)))
        return dict(inputs=torch.stack(padded), data_samples=samples)


@MODELS.register_module()
class VideoDataPreProcessor(BaseDataPreprocessor):
    """Keeps each clip (T, 3, H, W) uint8 as it is; :meth:`normalize` turns a
    few frames at a time into normalised RGB float, so a long clip is never
    held in float (bounded memory)."""

    def __init__(self, mean=(123.675, 116.28, 103.53),
                 std=(58.395, 57.12, 57.375), bgr_to_rgb: bool = True):
        super().__init__()
        self.register_buffer('mean', torch.tensor(mean).view(-1, 1, 1),
                             False)
        self.register_buffer('std', torch.tensor(std).view(-1, 1, 1), False)
        self.bgr_to_rgb = bgr_to_rgb

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        return dict(inputs=data['inputs'],
                    data_samples=data.get('data_samples'))

    def normalize(self, frames: Tensor) -> Tensor:
        """(t, 3, H, W) uint8 (BGR if ``bgr_to_rgb``) -> float normalised
        RGB."""
        x = frames.float()
        if self.bgr_to_rgb:
            x = x[:, [2, 1, 0]]
        return (x - self.mean) / self.std
