"""COCO mask / box AP of predicted instances against instance-id masks."""
import contextlib
import io
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vtseg.registry import METRICS
from vtseg.utils.coco_export import dump_coco_json, instances_to_coco

__all__ = [
    'InstanceMaskAPMetric', 'instance_masks_from_ids',
    'boxes_from_instance_masks'
]


def instance_masks_from_ids(ids: np.ndarray,
                            ignore_ids: Sequence[int] = (255, )
                            ) -> np.ndarray:
    """(H, W) instance-id map (0 = background) -> (n, H, W) bool masks,
    ids in increasing order, ``ignore_ids`` skipped."""
    ids = np.asarray(ids)
    if ids.ndim == 3:
        ids = ids[..., 0] if ids.shape[-1] in (1, 3) else ids[0]
    uniq = [int(u) for u in np.unique(ids) if u != 0 and u not in ignore_ids]
    if not uniq:
        return np.zeros((0, ) + ids.shape, bool)
    return np.stack([ids == u for u in uniq])


def _get(obj, key, default=None):
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default) if key in obj else default


def _np(x):
    if x is None:
        return None
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def boxes_from_instance_masks(masks: np.ndarray) -> np.ndarray:
    """(K, H, W) bool instance masks -> (K, 4) float64 [x1, y1, x2, y2]
    pixel boxes (0-based, half-open); an empty mask gives zeros."""
    out = np.zeros((len(masks), 4), np.float64)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if len(ys):
            out[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return out


@METRICS.register_module()
class InstanceMaskAPMetric(BaseMetric):
    """COCO AP (pycocotools ``COCOeval``) of ``pred_instances`` against
    ground-truth instances given as an instance-id mask.

    Ground truth per image: the mask file at ``seg_map_path`` (metainfo),
    read unchanged (palette indices / grey values are the ids; 0 =
    background, ``ignore_ids`` skipped), one instance per id, at the
    original image size; boxes are the masks' tight boxes. Predictions:
    ``pred_instances`` with ``masks`` (n, H, W) at the original size,
    ``scores`` and optional ``bboxes`` (x1, y1, x2, y2; default: tight
    boxes of the masks). One category; ``iscrowd`` 0 everywhere.

    Returned keys (fractions in [0, 1], COCO's -1 for "no ground truth" is
    kept): ``segm_mAP``, ``segm_mAP_50``, ``segm_mAP_75``,
    ``segm_AR_100`` and the same with ``bbox_`` for ``'bbox'`` in
    ``iou_types``.

    Args:
        iou_types: ``('segm', 'bbox')`` or a subset.
        category_name: name of the single category in the JSON files.
        ignore_ids: ids that are not instances (e.g. 255 void).
        outfile_prefix: if given, write ``<prefix>.gt.json`` and
            ``<prefix>.pred.json`` (COCO dataset / results format, masks as
            shapely-simplified polygons, RLE for masks with holes; see
            :mod:`vtseg.utils.coco_export`).
        polygon_tolerance: simplification tolerance of those polygons (px).
        collect_device, prefix: see :class:`mmengine.evaluator.BaseMetric`.
    """
    default_prefix = None

    def __init__(self,
                 iou_types: Sequence[str] = ('segm', 'bbox'),
                 category_name: str = 'object',
                 ignore_ids: Sequence[int] = (255, ),
                 outfile_prefix: Optional[str] = None,
                 polygon_tolerance: float = 0.5,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        bad = set(iou_types) - {'segm', 'bbox'}
        if bad or not iou_types:
            raise ValueError("InstanceMaskAPMetric: iou_types must be a "
                             f"non-empty subset of ('segm', 'bbox'), got "
                             f'{iou_types!r}')
        self.iou_types = tuple(iou_types)
        self.category_name = category_name
        self.ignore_ids = tuple(ignore_ids)
        self.outfile_prefix = outfile_prefix
        self.polygon_tolerance = polygon_tolerance

    def process(self, data_batch, data_samples: Sequence) -> None:
        for s in data_samples:
            meta = s if isinstance(s, dict) else s.metainfo
            path = _get(meta, 'seg_map_path')
            if path is None:
                raise KeyError('InstanceMaskAPMetric: data sample of '
                               f"{_get(meta, 'img_path')} has no "
                               'seg_map_path (instance-id mask file)')
            try:
                ids = np.array(Image.open(path))
            except OSError as err:
                raise OSError(f'InstanceMaskAPMetric: cannot read the '
                              f'instance mask {path}: {err}') from err
            gt = instance_masks_from_ids(ids, self.ignore_ids)
            pred = _get(s, 'pred_instances')
            if pred is None:
                raise KeyError('InstanceMaskAPMetric: no pred_instances for '
                               f"{_get(meta, 'img_path')} (use a segmentor "
                               'that predicts instances, e.g. '
                               'ConnNetSegmentor)')
            masks = _np(_get(pred, 'masks'))
            if masks is None:
                raise KeyError('InstanceMaskAPMetric: pred_instances has no '
                               'masks')
            masks = masks.astype(bool)
            if masks.size == 0:
                masks = np.zeros((0, ) + ids.shape[:2], bool)
            if masks.ndim != 3 or masks.shape[1:] != ids.shape[:2]:
                raise ValueError(
                    f'InstanceMaskAPMetric: predicted masks of shape '
                    f'{masks.shape} do not match the ground-truth size '
                    f'{ids.shape[:2]} of {path}')
            scores = _np(_get(pred, 'scores'))
            if scores is None:
                scores = np.ones(len(masks), np.float32)
            boxes = _np(_get(pred, 'bboxes'))
            if boxes is None:
                boxes = boxes_from_instance_masks(masks)
            self.results.append(
                dict(file_name=osp.basename(_get(meta, 'img_path', path)),
                     height=ids.shape[0], width=ids.shape[1],
                     gt_masks=gt, gt_boxes=boxes_from_instance_masks(gt),
                     masks=masks, scores=scores.astype(np.float32),
                     bboxes=boxes.astype(np.float64)))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        cats = [dict(id=1, name=self.category_name)]
        gt_images, pred_images = [], []
        for i, r in enumerate(results):
            base = dict(file_name=r['file_name'], height=r['height'],
                        width=r['width'], id=i + 1)
            gt_images.append(dict(base, bboxes=r['gt_boxes'],
                                  masks=r['gt_masks']))
            pred_images.append(dict(base, bboxes=r['bboxes'],
                                    masks=r['masks'], scores=r['scores']))
        # evaluation uses exact RLE masks; polygons only go to the files
        gt = instances_to_coco(gt_images, cats, segmentation='rle')
        preds = instances_to_coco(pred_images, cats, segmentation='rle',
                                  results_only=True)
        if self.outfile_prefix:
            kw = dict(segmentation='auto', tolerance=self.polygon_tolerance)
            dump_coco_json(instances_to_coco(gt_images, cats, **kw),
                           self.outfile_prefix + '.gt.json')
            dump_coco_json(
                instances_to_coco(pred_images, cats, results_only=True,
                                  **kw), self.outfile_prefix + '.pred.json')
            print_log(f'InstanceMaskAPMetric: wrote {self.outfile_prefix}'
                      '.gt.json and .pred.json', 'current')
        metrics = {}
        n_gt = len(gt['annotations'])
        for iou_type in self.iou_types:
            if not preds or not n_gt:
                stats = [0.0 if n_gt else -1.0] * 12
            else:
                with contextlib.redirect_stdout(io.StringIO()):
                    coco_gt = COCO()
                    coco_gt.dataset = gt
                    coco_gt.createIndex()
                    coco_dt = coco_gt.loadRes(preds)
                    ev = COCOeval(coco_gt, coco_dt, iou_type)
                    ev.evaluate()
                    ev.accumulate()
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    ev.summarize()
                print_log(f'{iou_type} ({len(results)} images, {n_gt} '
                          f'objects, {len(preds)} predictions):\n' +
                          out.getvalue(), 'current')
                stats = list(ev.stats)
            metrics[f'{iou_type}_mAP'] = float(stats[0])
            metrics[f'{iou_type}_mAP_50'] = float(stats[1])
            metrics[f'{iou_type}_mAP_75'] = float(stats[2])
            metrics[f'{iou_type}_AR_100'] = float(stats[8])
        return metrics
