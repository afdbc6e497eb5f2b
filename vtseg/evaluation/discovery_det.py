"""Discovered objects as mmdet detections, scored by mmdet's metrics
(docs/detection.md, "Discovery scored by mmdet").

TokenCut (and any method that fills ``pred_instances`` with ``bboxes``,
``scores`` and optionally ``masks``) returns mmseg ``SegDataSample``s; the
functions here turn them into class-agnostic mmdet ``DetDataSample``s, write
a class-agnostic copy of a COCO instances file (every category -> one
``object`` category, crowd flags kept), and run mmdet's ``CocoMetric``
(box and mask AP) and ``VOCMetric`` (box mAP) on them. The centred-box
baseline is a sample with one box (and its box-shaped mask).
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
from mmdet.evaluation import CocoMetric, VOCMetric
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

__all__ = [
    'AGNOSTIC_CLASSES', 'to_det_sample', 'centred_box_sample',
    'class_agnostic_coco', 'coco_gt_instances', 'score_coco',
    'score_voc'
]

#: ``dataset_meta['classes']`` of the class-agnostic protocol
AGNOSTIC_CLASSES = ('object', )


def to_det_sample(sample, img_id: int, max_objects: Optional[int] = None
                  ) -> DetDataSample:
    """A class-agnostic :class:`DetDataSample` from a sample holding
    ``pred_instances`` (bboxes (K, 4) in original-image pixels, scores (K,),
    optional masks (K, H, W) bool) and the ``ori_shape`` metainfo.

    Args:
        sample: e.g. a TokenCut ``SegDataSample`` (single- or
            multi-object).
        img_id: the image's id in the COCO file.
        max_objects: keep the first ``max_objects`` objects (None: all).

    Returns:
        DetDataSample with ``img_id``, ``ori_shape``, ``img_path`` metainfo
        and ``pred_instances`` (bboxes, scores, labels = 0, masks).
    """
    meta = sample.metainfo
    pred = sample.pred_instances
    k = len(pred) if max_objects is None else min(len(pred), max_objects)
    inst = InstanceData()
    inst.bboxes = pred.bboxes[:k].detach().float().cpu().reshape(-1, 4)
    inst.scores = (pred.scores[:k].detach().float().cpu()
                   if 'scores' in pred else torch.ones(k))
    inst.labels = torch.zeros(k, dtype=torch.long)
    if 'masks' in pred:
        inst.masks = torch.as_tensor(pred.masks[:k]).bool().cpu()
    out = DetDataSample(metainfo=dict(
        img_id=img_id, ori_shape=tuple(meta['ori_shape'][:2]),
        img_path=meta.get('img_path')))
    out.pred_instances = inst
    return out


def centred_box_sample(img_id: int, ori_shape: Sequence[int],
                       fraction: float = 0.5,
                       with_mask: bool = True) -> DetDataSample:
    """The centred-box baseline: one box covering ``fraction`` of the image
    width and height, centred, score 1 (and a mask filling the box)."""
    h, w = int(ori_shape[0]), int(ori_shape[1])
    bw, bh = w * fraction, h * fraction
    box = torch.tensor([[(w - bw) / 2, (h - bh) / 2, (w + bw) / 2,
                         (h + bh) / 2]])
    inst = InstanceData(bboxes=box, scores=torch.ones(1),
                        labels=torch.zeros(1, dtype=torch.long))
    if with_mask:
        m = torch.zeros(1, h, w, dtype=torch.bool)
        x1, y1, x2, y2 = box[0].round().long().tolist()
        m[0, y1:y2, x1:x2] = True
        inst.masks = m
    out = DetDataSample(metainfo=dict(img_id=img_id, ori_shape=(h, w)))
    out.pred_instances = inst
    return out


def class_agnostic_coco(ann_file: str, out_file: str,
                        image_ids: Optional[Sequence[int]] = None) -> dict:
    """Write a class-agnostic copy of a COCO instances file.

    Every annotation gets category 1 (``object``); crowd flags, boxes,
    segmentations and areas are kept. ``image_ids`` restricts the images
    (and their annotations) to a fixed subset.

    Returns:
        the written dict.
    """
    with open(ann_file) as f:
        coco = json.load(f)
    images = coco['images']
    if image_ids is not None:
        keep = set(int(i) for i in image_ids)
        missing = keep - {im['id'] for im in images}
        if missing:
            raise ValueError(f'{ann_file}: no image with id(s) '
                             f'{sorted(missing)[:5]}')
        images = [im for im in images if im['id'] in keep]
    ids = {im['id'] for im in images}
    anns = [dict(a, category_id=1) for a in coco['annotations']
            if a['image_id'] in ids]
    out = dict(info=coco.get('info', {}), licenses=coco.get('licenses', []),
               images=images, annotations=anns,
               categories=[dict(id=1, name=AGNOSTIC_CLASSES[0],
                                supercategory=AGNOSTIC_CLASSES[0])])
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    with open(out_file, 'w') as f:
        json.dump(out, f)
    return out


def coco_gt_instances(coco: dict, img_id: int):
    """(gt_instances, gt_ignore_instances) of one image of a class-agnostic
    COCO dict, for ``VOCMetric`` (crowd boxes are ignored)."""
    boxes, ignore = [], []
    for a in coco['annotations']:
        if a['image_id'] != img_id:
            continue
        x, y, w, h = a['bbox']
        (ignore if a.get('iscrowd', 0) else boxes).append(
            [x, y, x + w, y + h])

    def inst(b):
        return InstanceData(
            bboxes=torch.tensor(b, dtype=torch.float32).reshape(-1, 4),
            labels=torch.zeros(len(b), dtype=torch.long))

    return inst(boxes), inst(ignore)


def score_coco(samples: List[DetDataSample], agnostic_ann_file: str,
               metric: Sequence[str] = ('bbox', 'segm'),
               prefix: str = 'coco') -> Dict[str, float]:
    """mmdet ``CocoMetric`` (class-agnostic) of the samples against the
    class-agnostic file from :func:`class_agnostic_coco`. ``'segm'`` needs
    masks in every sample."""
    m = CocoMetric(ann_file=agnostic_ann_file, metric=list(metric),
                   prefix=prefix)
    m.dataset_meta = dict(classes=AGNOSTIC_CLASSES)
    m.process({}, [s.to_dict() for s in samples])
    return m.compute_metrics(m.results)


def score_voc(samples: List[DetDataSample], agnostic_coco: dict,
              iou_thrs: Sequence[float] = (0.5, ),
              prefix: str = 'pascal_voc') -> Dict[str, float]:
    """mmdet ``VOCMetric`` (box mAP at ``iou_thrs``, area method) of the
    samples, ground truth from the class-agnostic COCO dict."""
    m = VOCMetric(iou_thrs=list(iou_thrs), eval_mode='area', prefix=prefix)
    m.dataset_meta = dict(classes=AGNOSTIC_CLASSES)
    dicts = []
    for s in samples:
        gt, ign = coco_gt_instances(agnostic_coco, s.img_id)
        d = s.clone()
        d.gt_instances = gt
        d.ignored_instances = ign
        dicts.append(d.to_dict())
    m.process({}, dicts)
    return m.compute_metrics(m.results)
