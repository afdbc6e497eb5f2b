"""Transforms for unsupervised object discovery and video segmentation
(TokenCut, docs/methods/tokencut.md).

* :class:`ResizeToMultiple`: resize an image to a multiple of the patch size
  (saliency protocol: Lanczos, no padding).
* :class:`LoadVideoFrames`: load (and resize) every frame of a video item of
  :class:`~vtseg.datasets.VideoFramesDataset`, or of decoded frames.
* :class:`PackVideoInputs`: pack a clip and its masks for
  :class:`~vtseg.models.segmentors.TokenCutVideo`.
"""
import logging
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from vtseg.registry import TRANSFORMS
from .loading import binarize_mask, reduce_mask_channels

__all__ = ['ResizeToMultiple', 'LoadVideoFrames', 'PackVideoInputs']

_PIL_FILTERS = dict(nearest=Image.NEAREST, bilinear=Image.BILINEAR,
                    bicubic=Image.BICUBIC, lanczos=Image.LANCZOS)


@TRANSFORMS.register_module()
class ResizeToMultiple(BaseTransform):
    """Resize the image to (round(W / d) d, round(H / d) d) with PIL (TokenCut
    saliency, docs/methods/tokencut.md#saliency-mode: Lanczos, no padding).
    Only ``img`` is resized (masks and boxes stay at the original size, where
    the metrics compare).

    Added / updated keys: ``img``, ``img_shape``, ``scale_factor`` (w, h).
    """

    def __init__(self, size_divisor: int = 16,
                 interpolation: str = 'lanczos'):
        if interpolation not in _PIL_FILTERS:
            raise ValueError(f'interpolation must be one of '
                             f'{sorted(_PIL_FILTERS)}')
        self.size_divisor = size_divisor
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        d = self.size_divisor
        nw, nh = int(round(w / d)) * d, int(round(h / d)) * d
        if nw < d or nh < d:
            raise ValueError(f'ResizeToMultiple: image '
                             f'{results.get("img_path", "")} is {h}x{w}, '
                             f'smaller than one {d}x{d} patch')
        if (nw, nh) != (w, h):
            img = np.asarray(Image.fromarray(img).resize(
                (nw, nh), resample=_PIL_FILTERS[self.interpolation]))
        results['img'] = img
        results['img_shape'] = (nh, nw)
        results['scale_factor'] = (nw / w, nh / h)
        return results

    def __repr__(self):
        return (f'{type(self).__name__}(size_divisor={self.size_divisor}, '
                f'interpolation={self.interpolation!r})')


def _short_side_size(w, h, short_side, d):
    r = min(w, h) / short_side
    return round(w / r / d) * d, round(h / r / d) * d


@TRANSFORMS.register_module()
class LoadVideoFrames(BaseTransform):
    """Load (and resize) every frame of a video item.

    Frames are resized so the short side is ``short_side`` and both sides are
    rounded to a multiple of ``size_divisor`` (the reference: short side 320,
    Lanczos); ``short_side=None`` keeps the size (padded by the backbone).

    Input: ``img_paths`` (frame files), or ``frames`` (decoded BGR uint8
    arrays) when there are no paths.
    Added keys: ``frames`` (T, H, W, 3) uint8 BGR (resized), ``flow_frames`` (same, if
    ``flow_paths``), ``gt_masks`` (T, H0, W0) uint8 in {0, 1} (if
    ``ann_paths``), ``ori_shape``, ``img_shape``, ``scale_factor``.
    """

    def __init__(self, short_side: Optional[int] = 320,
                 size_divisor: int = 16, interpolation: str = 'lanczos'):
        self.short_side = short_side
        self.size_divisor = size_divisor
        self.interpolation = _PIL_FILTERS[interpolation]

    def _resize(self, im: Image.Image) -> np.ndarray:
        if self.short_side:
            size = _short_side_size(im.width, im.height, self.short_side,
                                    self.size_divisor)
            im = im.resize(size, resample=self.interpolation)
        return np.asarray(im)[..., ::-1]

    def _load(self, paths, seq='?'):
        out, ori = [], None
        for t, p in enumerate(paths):
            try:
                im = Image.open(p).convert('RGB')
            except OSError as e:
                raise ValueError(f'LoadVideoFrames: cannot read {p}: '
                                 f'{e}') from e
            if ori is None:
                ori = (im.height, im.width)
            elif (im.height, im.width) != ori:
                raise ValueError(
                    f'LoadVideoFrames: sequence {seq}: frame {t} ({p}) is '
                    f'{im.width}x{im.height} (WxH) but frame 0 ({paths[0]}) '
                    f'is {ori[1]}x{ori[0]}; every frame of a clip must have '
                    'one size')
            out.append(self._resize(im))
        return np.stack(out), ori

    def _from_arrays(self, frames):
        """Frames already decoded (BGR uint8 (H, W, 3) each, e.g. from a
        video file in the video demo)."""
        ori = frames[0].shape[:2]
        out = []
        for t, f in enumerate(frames):
            if f.shape[:2] != ori:
                raise ValueError(f'LoadVideoFrames: frame {t} is '
                                 f'{f.shape[:2]}, frame 0 is {ori}')
            out.append(self._resize(Image.fromarray(
                np.ascontiguousarray(f[..., ::-1]))))
        return np.stack(out), ori

    @staticmethod
    def _load_mask(path, ori) -> np.ndarray:
        """(H0, W0) uint8 {0, 1}: the mask file binarised by vtseg's rule
        (:func:`~vtseg.datasets.transforms.loading.binarize_mask`)."""
        try:
            mask = np.asarray(Image.open(path))
        except OSError as e:
            raise ValueError(f'LoadVideoFrames: cannot read mask {path}: '
                             f'{e}') from e
        mask = reduce_mask_channels(mask)
        if mask.shape[:2] != tuple(ori):
            raise ValueError(f'LoadVideoFrames: mask {path} is '
                             f'{mask.shape[0]}x{mask.shape[1]}, its frames '
                             f'are {ori[0]}x{ori[1]} (HxW)')
        fg, note = binarize_mask(mask)
        if note is not None:
            print_log(f'LoadVideoFrames: mask {path} is {note}',
                      logger='current', level=logging.WARNING)
        return fg.astype(np.uint8)

    def transform(self, results: dict) -> dict:
        if results.get('img_paths') is None and results.get('frames') \
                is not None:
            if not len(results['frames']):
                raise ValueError('LoadVideoFrames: the video item has no '
                                 'frames')
            frames, ori = self._from_arrays(results['frames'])
        else:
            paths = results.get('img_paths')
            if not paths:
                raise ValueError('LoadVideoFrames: the video item has no '
                                 'frames')
            frames, ori = self._load(paths, results.get('seq_name', '?'))
        results['frames'] = frames
        if results.get('flow_paths'):
            results['flow_frames'] = self._load(
                results['flow_paths'], results.get('seq_name', '?'))[0]
        if results.get('ann_paths'):
            results['gt_masks'] = np.stack(
                [self._load_mask(a, ori) for a in results['ann_paths']])
        results['ori_shape'] = ori
        results['img_shape'] = frames.shape[1:3]
        results['scale_factor'] = (frames.shape[2] / ori[1],
                                   frames.shape[1] / ori[0])
        return results


@TRANSFORMS.register_module()
class PackVideoInputs(BaseTransform):
    """Pack a video item: ``inputs`` (T, 3, H, W) uint8 tensor (or
    ``dict(frames=..., flow=...)`` with flow renderings) and a
    ``SegDataSample`` whose ``gt_sem_seg`` holds the (T, H0, W0) masks."""

    meta_keys = ('seq_name', 'img_paths', 'frame_offset', 'ori_shape',
                 'img_shape', 'scale_factor')

    def transform(self, results: dict) -> dict:
        frames = torch.from_numpy(
            np.ascontiguousarray(results['frames'].transpose(0, 3, 1, 2)))
        inputs = frames
        if 'flow_frames' in results:
            inputs = dict(frames=frames, flow=torch.from_numpy(
                np.ascontiguousarray(
                    results['flow_frames'].transpose(0, 3, 1, 2))))
        sample = SegDataSample()
        if 'gt_masks' in results:
            sample.gt_sem_seg = PixelData(
                data=torch.from_numpy(results['gt_masks']))
        sample.set_metainfo({k: results[k] for k in self.meta_keys
                             if k in results})
        return dict(inputs=inputs, data_samples=sample)
