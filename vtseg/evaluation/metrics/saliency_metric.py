"""Saliency metric (MAE, max F-beta, IoU, Acc) on mmseg ``SegDataSample``s."""
import logging
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.utils import mkdir_or_exist
from PIL import Image

from vtseg.functional.saliency import (SALIENCY_BETA2, min_max_normalize,
                                       saliency_image_stats,
                                       saliency_scores_from_stats)
from vtseg.registry import METRICS

_ACTIVATIONS = ('auto', 'sigmoid', 'softmax', 'none')
_IGNORE_MODES = ('exclude', 'background')


@METRICS.register_module()
class SaliencyMetric(BaseMetric):
    """MAE, max F-beta (beta^2 = 0.3), IoU and pixel accuracy of a binary
    saliency / foreground map, as fractions in [0, 1] under the keys
    ``mae``, ``max_f``, ``iou``, ``acc``. Definitions:
    :mod:`vtseg.functional.saliency` and docs/saliency.md.

    Prediction: ``data_sample[pred_key]['data']``, a (C, H, W) tensor turned
    into a foreground probability by ``activation``:

    * ``'auto'`` (default): C = 2 -> softmax, foreground = channel 1;
      C = 1 -> used as it is, because mmseg's
      ``BaseSegmentor.postprocess_result`` already stores ``sigmoid(logits)``
      under ``seg_logits`` for single-channel heads; a single-channel map
      outside [0, 1] is rejected with a hint to use ``'sigmoid'``.
    * ``'sigmoid'``: C = 1 raw logits (a segmentor that does not sigmoid).
    * ``'softmax'``: C >= 2 logits, foreground = channel ``fg_channel``.
    * ``'none'``: already probabilities; channel ``fg_channel`` if C > 1.

    The probability map is resized bilinearly (``align_corners=False``) to
    the ground-truth size when the two differ (a convex combination, so it
    stays in [0, 1]), with a warning naming the image (the first three);
    mmseg's segmentors already return maps at the original image size, and
    ``LoadBinaryMask`` refuses a mask whose size differs from its image's.

    Ground truth: ``data_sample['gt_sem_seg']['data']`` with labels
    0 (background), 1 (foreground) and ``ignore_index``; any other value is
    an error (load saliency masks with ``LoadBinaryMask``). Pixels labelled
    ``ignore_index`` are left out of every score (``ignore_mode='exclude'``,
    default, as mmseg's ``IoUMetric`` does) or counted as background
    (``ignore_mode='background'``).

    Distributed evaluation: each image adds only its histogram statistics
    (about 520 numbers, see :func:`saliency_image_stats`) to
    ``self.results``, which mmengine gathers across ranks.

    Args:
        protocol: ``'sod'`` (default: mean precision and recall over images,
            then F, then max over the 255 thresholds) or ``'per_image'``
            (docs/methods/metrics.md#saliency-per-image-protocol: F per
            image averaged, then max).
        pred_key: data-sample field holding the prediction.
        activation: see above.
        fg_channel: foreground channel for ``'softmax'`` / ``'none'``
            (``'auto'`` with two channels uses 1).
        min_max_normalize: min-max normalise each map before scoring
            (docs/methods/metrics.md#saliency-salient-object-protocol; off
            by default).
        threshold: IoU / Acc binarisation, pred > threshold.
        empty_iou: IoU when prediction and ground truth are both empty
            (1.0); ``None`` leaves such images out of the IoU mean.
        beta2: beta squared of the F-measure.
        ignore_index: ground-truth label of ignored pixels.
        ignore_mode: ``'exclude'`` or ``'background'``.
        output_dir: if given, write each probability map as an 8-bit PNG
            ``<output_dir>/<image basename>.png`` (value round(255 p)).
        format_only: only write the maps (needs ``output_dir``); no ground
            truth needed and no scores returned.
        collect_device, prefix, collect_dir: see
            :class:`mmengine.evaluator.BaseMetric`.
    """

    def __init__(self,
                 protocol: str = 'sod',
                 pred_key: str = 'seg_logits',
                 activation: str = 'auto',
                 fg_channel: int = 1,
                 min_max_normalize: bool = False,
                 threshold: float = 0.5,
                 empty_iou: Optional[float] = 1.0,
                 beta2: float = SALIENCY_BETA2,
                 ignore_index: int = 255,
                 ignore_mode: str = 'exclude',
                 output_dir: Optional[str] = None,
                 format_only: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        if protocol not in ('sod', 'per_image'):
            raise ValueError("SaliencyMetric: protocol must be 'sod' or "
                             f"'per_image', got {protocol!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f'SaliencyMetric: activation must be one of '
                             f'{_ACTIVATIONS}, got {activation!r}')
        if ignore_mode not in _IGNORE_MODES:
            raise ValueError(f'SaliencyMetric: ignore_mode must be one of '
                             f'{_IGNORE_MODES}, got {ignore_mode!r}')
        if format_only and not output_dir:
            raise ValueError('SaliencyMetric: format_only=True needs an '
                             'output_dir')
        self.protocol = protocol
        self.pred_key = pred_key
        self.activation = activation
        self.fg_channel = fg_channel
        self.min_max_normalize = min_max_normalize
        self.threshold = threshold
        self.empty_iou = empty_iou
        self.beta2 = beta2
        self.ignore_index = ignore_index
        self.ignore_mode = ignore_mode
        self.output_dir = output_dir
        self.format_only = format_only
        self._resized = 0
        if output_dir:
            mkdir_or_exist(output_dir)

    # ------------------------------------------------------------------
    def _foreground_prob(self, pred: torch.Tensor, name: str) -> torch.Tensor:
        """(C, H, W) prediction -> (H, W) float32 foreground probability."""
        if pred.ndim == 2:
            pred = pred[None]
        if pred.ndim != 3:
            raise ValueError(f'SaliencyMetric: {self.pred_key} of {name} must '
                             f'be (C, H, W), got shape {tuple(pred.shape)}')
        pred = pred.detach().float().cpu()
        channels = pred.shape[0]
        mode = self.activation
        if mode == 'auto':
            if channels == 1:
                mode = 'none'
                if not self.min_max_normalize and pred.numel() and (
                        pred.min() < 0 or pred.max() > 1):
                    raise ValueError(
                        f'SaliencyMetric: single-channel {self.pred_key} of '
                        f'{name} has values outside [0, 1] '
                        f'([{pred.min():.3g}, {pred.max():.3g}]); these look '
                        "like raw logits: set activation='sigmoid'")
            elif channels == 2:
                return pred.softmax(0)[1]
            else:
                raise ValueError(
                    f"SaliencyMetric: activation='auto' expects 1 or 2 "
                    f'channels, got {channels} for {name}; set activation '
                    "and fg_channel explicitly")
        if mode == 'sigmoid':
            if channels != 1:
                raise ValueError("SaliencyMetric: activation='sigmoid' needs "
                                 f'1 channel, got {channels} for {name}')
            return pred[0].sigmoid()
        channel = 0 if channels == 1 else self.fg_channel
        if not -channels <= channel < channels:
            raise ValueError(f'SaliencyMetric: fg_channel={channel} out of '
                             f'range for {channels} channels ({name})')
        if mode == 'softmax':
            if channels < 2:
                raise ValueError("SaliencyMetric: activation='softmax' needs "
                                 f'>= 2 channels, got {channels} for {name}')
            return pred.softmax(0)[channel]
        return pred[channel]

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Turn each data sample into its per-image statistics.

        Args:
            data_batch: unused.
            data_samples: dicts (as mmengine's Evaluator passes them) or
                ``SegDataSample`` objects with ``pred_key`` and
                ``gt_sem_seg`` (``gt_sem_seg`` not needed with
                ``format_only``).
        """
        for sample in data_samples:
            if not isinstance(sample, dict):
                sample = sample.to_dict()
            name = sample.get('img_path', '<unnamed image>')
            if self.pred_key not in sample:
                raise KeyError(f'SaliencyMetric: data sample of {name} has no '
                               f'{self.pred_key!r} (fields: {sorted(sample)})')
            prob = self._foreground_prob(sample[self.pred_key]['data'], name)

            gt = None
            if not self.format_only:
                if 'gt_sem_seg' not in sample:
                    raise KeyError(f'SaliencyMetric: data sample of {name} '
                                   'has no gt_sem_seg')
                gt = sample['gt_sem_seg']['data']
                if gt.ndim == 3 and gt.shape[0] == 1:
                    gt = gt[0]
                gt = gt.cpu().to(torch.int64)
                if gt.ndim != 2:
                    raise ValueError(f'SaliencyMetric: gt_sem_seg of {name} '
                                     f'must be (1, H, W), got '
                                     f'{tuple(gt.shape)}')
                if prob.shape != gt.shape:
                    self._resized += 1
                    if self._resized <= 3:
                        print_log(
                            f'SaliencyMetric: the prediction of {name} is '
                            f'{tuple(prob.shape)}, its ground truth '
                            f'{tuple(gt.shape)}: the prediction is resized '
                            'bilinearly to the ground truth' +
                            ('; further resizes are not reported'
                             if self._resized == 3 else ''),
                            logger='current', level=logging.WARNING)
                    prob = F.interpolate(
                        prob[None, None],
                        size=tuple(gt.shape),
                        mode='bilinear',
                        align_corners=False)[0, 0]

            prob = prob.numpy()
            if self.min_max_normalize:
                prob = min_max_normalize(prob).astype(np.float32)
            elif prob.size and not (prob.min() >= 0 and prob.max() <= 1):
                raise ValueError(
                    f'SaliencyMetric: foreground probability of {name} has '
                    f'values outside [0, 1] ([{prob.min():.3g}, '
                    f'{prob.max():.3g}]); check activation (or set '
                    'min_max_normalize=True)')
            if self.output_dir:
                self._write_map(prob, name)
            if gt is None:
                continue

            gt = gt.numpy()
            ignored = gt == self.ignore_index
            bad = ~(ignored | (gt == 0) | (gt == 1))
            if bad.any():
                raise ValueError(
                    f'SaliencyMetric: gt_sem_seg of {name} has labels '
                    f'{np.unique(gt[bad])[:10].tolist()}; expected 0 '
                    f'(background), 1 (foreground) or {self.ignore_index} '
                    '(ignored): load masks with LoadBinaryMask')
            valid = ~ignored if self.ignore_mode == 'exclude' else None
            self.results.append(
                saliency_image_stats(prob, gt == 1, valid, self.threshold))

    def _write_map(self, prob: np.ndarray, name: str) -> None:
        basename = osp.splitext(osp.basename(name))[0]
        out = np.rint(prob * 255).astype(np.uint8)
        Image.fromarray(out).save(osp.join(self.output_dir, basename + '.png'))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Scores from the gathered per-image statistics.

        Returns:
            dict with float ``mae``, ``max_f``, ``iou``, ``acc`` (empty with
            ``format_only``).
        """
        if self.format_only:
            print_log(f'SaliencyMetric: maps written to {self.output_dir}',
                      logger='current')
            return {}
        scores = saliency_scores_from_stats(
            results,
            protocol=self.protocol,
            beta2=self.beta2,
            empty_iou=self.empty_iou)
        print_log(
            f'SaliencyMetric ({self.protocol} protocol, {len(results)} '
            'images): ' + ', '.join(f'{k}={v:.4f}'
                                    for k, v in scores.items()),
            logger='current')
        return scores
