"""CorLoc: correct localisation rate of single-object discovery
(docs/methods/metrics.md#corloc)."""
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from vtseg.functional.normalized_cut import centered_box, corloc_iou
from vtseg.registry import METRICS

__all__ = ['CorLocMetric']


def _np(x):
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x, np.float64)


@METRICS.register_module()
class CorLocMetric(BaseMetric):
    """Fraction of images whose first predicted box has IoU >= ``iou_thr``
    with any ground-truth box of the image.

    Prediction: ``data_sample.pred_instances.bboxes`` (K, 4), the first box
    is scored (TokenCut's main object). Ground truth: the ``gt_bboxes``
    metainfo (K', 4) in original-image pixels (pack it with
    ``PackSegInputs(meta_keys=DISCOVERY_META_KEYS)``); an image with no
    ground-truth box is a miss.

    Keys (fractions in [0, 1]): ``corloc``; with ``centered_baseline`` also
    ``corloc_centered`` (a centred box covering ``centered_fraction`` of the
    width and height of each image); when some image has several predicted
    boxes, ``corloc_any`` (a hit if any predicted box hits) and
    ``mean_num_objects``. Samples with a ``seq_name`` (video frames,
    ``VideoFramesDataset(items='frame')``) also give ``<seq>/corloc`` and
    ``<seq>/corloc_centered`` per sequence.

    Args:
        iou_thr: hit threshold (0.5).
        faithful: the reference's IoU (1e-7 added to every height).
        centered_baseline: also score the centred-box baseline.
        centered_fraction: its size as a fraction of the image sides.
    """
    default_prefix = ''

    def __init__(self,
                 iou_thr: float = 0.5,
                 faithful: bool = False,
                 centered_baseline: bool = True,
                 centered_fraction: float = 0.5,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs):
        super().__init__(collect_device=collect_device, prefix=prefix,
                         **kwargs)
        self.iou_thr = iou_thr
        self.faithful = faithful
        self.centered_baseline = centered_baseline
        self.centered_fraction = centered_fraction

    def process(self, data_batch, data_samples: Sequence) -> None:
        for s in data_samples:
            name = s.get('img_path', '<image>')
            if 'gt_bboxes' not in s:
                raise KeyError(f'CorLocMetric: sample {name} has no '
                               'gt_bboxes (pack them with PackSegInputs('
                               'meta_keys=DISCOVERY_META_KEYS))')
            if 'pred_instances' not in s or \
                    'bboxes' not in s['pred_instances']:
                raise KeyError(f'CorLocMetric: sample {name} has no '
                               'pred_instances.bboxes')
            gt = _np(s['gt_bboxes']).reshape(-1, 4)
            pred = _np(s['pred_instances']['bboxes']).reshape(-1, 4)
            if len(pred) == 0:
                raise ValueError(f'CorLocMetric: no predicted box for {name}')
            ious = [corloc_iou(b, gt, self.faithful) if len(gt) else
                    np.zeros(0) for b in pred]
            hit = bool(len(gt) and (ious[0] >= self.iou_thr).any())
            hit_any = any(len(i) and (i >= self.iou_thr).any() for i in ious)
            res = dict(hit=hit, hit_any=bool(hit_any), num=len(pred),
                       seq=s.get('seq_name'))
            if self.centered_baseline:
                shape = s['ori_shape']
                cb = centered_box(shape[:2], self.centered_fraction)
                res['hit_centered'] = bool(
                    len(gt) and (corloc_iou(cb, gt, self.faithful) >=
                                 self.iou_thr).any())
            self.results.append(res)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        n = len(results)
        if n == 0:
            raise ValueError('CorLocMetric: no image was evaluated')
        out = dict(corloc=sum(r['hit'] for r in results) / n)
        if self.centered_baseline:
            out['corloc_centered'] = sum(r['hit_centered']
                                         for r in results) / n
        if any(r['num'] > 1 for r in results):
            out['corloc_any'] = sum(r['hit_any'] for r in results) / n
            out['mean_num_objects'] = float(np.mean([r['num']
                                                     for r in results]))
        print_log(f'CorLoc over {n} images: ' + ', '.join(
            f'{k} {v:.4f}' for k, v in out.items()), logger='current')
        seqs = sorted({r['seq'] for r in results if r.get('seq') is not None})
        for seq in seqs:
            rs = [r for r in results if r.get('seq') == seq]
            out[f'{seq}/corloc'] = sum(r['hit'] for r in rs) / len(rs)
            if self.centered_baseline:
                out[f'{seq}/corloc_centered'] = sum(
                    r['hit_centered'] for r in rs) / len(rs)
            print_log(f'CorLoc {seq}: {out[f"{seq}/corloc"]:.4f} over '
                      f'{len(rs)} frames', logger='current')
        return out
