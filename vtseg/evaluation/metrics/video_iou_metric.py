"""Video object segmentation IoU: per frame, averaged within each sequence,
then over sequences (docs/methods/tokencut.md#video-mode step 5,
docs/methods/metrics.md#other-metrics)."""
import os.path as osp
from collections import defaultdict
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from vtseg.registry import METRICS

__all__ = ['VideoIoUMetric', 'frame_iou']


_LAYOUT_DIRS = ('JPEGImages', 'images', 'frames', '480p', '1080p', 'Full-Resolution')


def _sequence_of(path: str) -> str:
    """Sequence of a frame path: its folder, skipping layout folders
    (``blackswan/JPEGImages/00000.jpg`` and ``JPEGImages/480p/blackswan/
    00000.jpg`` both give ``blackswan``)."""
    d = osp.dirname(path)
    while osp.basename(d) in _LAYOUT_DIRS:
        d = osp.dirname(d)
    return osp.basename(d)


def frame_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two binary masks; 1.0 when both are empty (the reference's
    evaluation script)."""
    pred = np.asarray(pred).astype(bool)
    gt = np.asarray(gt).astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f'frame_iou: prediction {pred.shape} vs ground '
                         f'truth {gt.shape}')
    union = np.logical_or(pred, gt).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, gt).sum() / union)


@METRICS.register_module()
class VideoIoUMetric(BaseMetric):
    """Mean IoU of foreground masks over the frames of each sequence, then
    over sequences.

    Accepts clip samples (``pred_sem_seg`` / ``gt_sem_seg`` data (T, H, W),
    sequence from the ``seq_name`` metainfo; TokenCutVideo) and per-frame
    samples (1, H, W) (any image model; the sequence is ``seq_name`` or the
    frame's folder, layout folders such as ``JPEGImages`` / ``480p``
    skipped). Foreground is label > 0.

    Keys: ``iou`` (mean over sequences of the per-sequence mean frame IoU:
    the DAVIS 2016 region similarity J mean, over the frames given),
    ``frame_iou`` (mean over all frames), ``num_frames``, ``num_sequences``;
    with ``centered_baseline``, ``iou_centered``: the same for a centred box
    covering half of each side, and ``num_above_centered`` (sequences whose
    IoU exceeds the centred box's). With ``per_sequence`` (default) also
    ``<seq>/iou`` and ``<seq>/iou_centered`` for every sequence, and a
    per-sequence table in the log.
    """
    default_prefix = ''

    def __init__(self, centered_baseline: bool = True,
                 per_sequence: bool = True,
                 collect_device: str = 'cpu', prefix: Optional[str] = None,
                 **kwargs):
        super().__init__(collect_device=collect_device, prefix=prefix,
                         **kwargs)
        self.centered_baseline = centered_baseline
        self.per_sequence = per_sequence

    @staticmethod
    def _centered(shape):
        h, w = shape
        m = np.zeros((h, w), bool)
        m[int(round(h / 4)):int(round(3 * h / 4)),
          int(round(w / 4)):int(round(3 * w / 4))] = True
        return m

    def process(self, data_batch, data_samples: Sequence) -> None:
        for s in data_samples:
            pred = s['pred_sem_seg']['data']
            if 'gt_sem_seg' not in s:
                raise KeyError('VideoIoUMetric: sample '
                               f'{s.get("seq_name", s.get("img_path"))} has '
                               'no gt_sem_seg')
            gt = s['gt_sem_seg']['data']
            pred = pred.cpu().numpy() if hasattr(pred, 'cpu') else pred
            gt = gt.cpu().numpy() if hasattr(gt, 'cpu') else gt
            seq = s.get('seq_name')
            if seq is None:
                seq = _sequence_of(s.get('img_path', ''))
            pred = np.asarray(pred).reshape(-1, *pred.shape[-2:])
            gt = np.asarray(gt).reshape(-1, *gt.shape[-2:])
            if pred.shape != gt.shape:
                raise ValueError(f'VideoIoUMetric: {seq}: prediction '
                                 f'{pred.shape} vs ground truth {gt.shape}')
            # one entry per sample: mmengine truncates ``results`` to the
            # dataset length, so per-frame entries of a clip would be lost
            r = dict(seq=seq, iou=[], iou_centered=[])
            for p, g in zip(pred, gt):
                g = (g > 0) & (g != 255)
                r['iou'].append(frame_iou(p > 0, g))
                if self.centered_baseline:
                    r['iou_centered'].append(
                        frame_iou(self._centered(g.shape), g))
            self.results.append(r)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        results = [
            dict(seq=r['seq'], iou=v,
                 **({'iou_centered': r['iou_centered'][i]}
                    if r['iou_centered'] else {}))
            for r in results for i, v in enumerate(r['iou'])
        ]
        if not results:
            raise ValueError('VideoIoUMetric: no frame was evaluated')
        per_seq = defaultdict(list)
        per_seq_c = defaultdict(list)
        for r in results:
            per_seq[r['seq']].append(r['iou'])
            if 'iou_centered' in r:
                per_seq_c[r['seq']].append(r['iou_centered'])
        out = dict(iou=float(np.mean([np.mean(v) for v in per_seq.values()])),
                   frame_iou=float(np.mean([r['iou'] for r in results])),
                   num_frames=len(results), num_sequences=len(per_seq))
        seq_iou = {k: float(np.mean(v)) for k, v in per_seq.items()}
        seq_c = {k: float(np.mean(v)) for k, v in per_seq_c.items()}
        if per_seq_c:
            out['iou_centered'] = float(np.mean(list(seq_c.values())))
            out['num_above_centered'] = sum(
                seq_iou[k] > seq_c[k] for k in seq_iou)
        lines = [f'{"sequence":<20}{"frames":>7}{"IoU":>8}'
                 + (f'{"centred":>9}' if seq_c else '')]
        for seq, v in per_seq.items():
            lines.append(f'{seq:<20}{len(v):>7}{seq_iou[seq]:>8.4f}'
                         + (f'{seq_c[seq]:>9.4f}' if seq_c else ''))
            if self.per_sequence:
                out[f'{seq}/iou'] = seq_iou[seq]
                if seq_c:
                    out[f'{seq}/iou_centered'] = seq_c[seq]
        lines.append(f'{"mean (J mean)":<20}{len(results):>7}'
                     f'{out["iou"]:>8.4f}'
                     + (f'{out["iou_centered"]:>9.4f}' if seq_c else ''))
        print_log('VideoIoU per sequence:\n' + '\n'.join(lines),
                  logger='current')
        return out
