"""Export discovered / predicted objects (boxes, masks, scores) as COCO JSON.

Generic: any list of images with ``bboxes`` (K, 4) [x1, y1, x2, y2],
optional ``masks`` (K, H, W) bool, ``scores`` and ``labels``; mmseg /
mmdet data samples with ``pred_instances`` plug in through
:func:`data_samples_to_coco`.

Masks become polygons with holes along the pixel edges (pixel (x, y) covers
[x, x+1) x [y, y+1)): the exact union of the mask's pixel runs (shapely),
then simplified (``tolerance`` in pixels, topology preserved). COCO polygons
cannot express holes (pycocotools unions the rings), so with
``segmentation='auto'`` (default) a mask whose polygons have holes is
written as RLE instead; ``'polygon'`` drops holes (outer rings only),
``'rle'`` always writes RLE.
:func:`mask_to_polygons` returns the shapely geometry itself (with holes).
"""
import json
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import shapely
from pycocotools import mask as mask_utils
from scipy import ndimage
from shapely.geometry import MultiPolygon, Polygon

__all__ = [
    'mask_to_polygons', 'polygons_to_coco', 'mask_to_rle', 'instances_to_coco',
    'data_samples_to_coco', 'dump_coco_json'
]


def _row_runs(m: np.ndarray):
    """(row, start, stop) of every horizontal run of True pixels."""
    pad = np.zeros((m.shape[0], m.shape[1] + 2), np.int8)
    pad[:, 1:-1] = m
    d = np.diff(pad, axis=1)
    r0, c0 = np.nonzero(d == 1)
    r1, c1 = np.nonzero(d == -1)  # same row order, one stop per start
    return r0, c0, c1


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.5,
                     min_area: float = 1.0) -> MultiPolygon:
    """Polygons (with holes) of a binary mask, along the pixel edges.

    The geometry is the exact union of the mask's pixels (each horizontal
    run of pixels is one rectangle; ``shapely.unary_union`` merges them per
    8-connected component), so holes, islands in holes and one-pixel strokes
    are all kept; then it is simplified (Douglas-Peucker, topology
    preserved). Cost grows with the number of pixel runs: blob-like masks
    (TokenCut's block masks, instance masks) take well under a second at
    480 x 854; a salt-and-pepper mask of 100k runs takes minutes.

    Args:
        mask: (H, W) bool / 0-1 array.
        tolerance: simplification tolerance in pixels (0: exact outline).
        min_area: drop polygons smaller than this (pixels^2).

    Returns:
        shapely MultiPolygon in pixel coordinates (x right, y down, pixel
        (x, y) covers [x, x + 1) x [y, y + 1)); empty for an empty mask.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f'mask_to_polygons: mask must be (H, W), got shape '
                         f'{m.shape}')
    m = m.astype(bool)
    if not m.any():
        return MultiPolygon()
    # one union per 8-connected component keeps every union small
    labels, _ = ndimage.label(m, structure=np.ones((3, 3)))
    polys = []
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        comp = labels[sl] == lab
        rows, c0, c1 = _row_runs(comp)
        y0, x0 = sl[0].start, sl[1].start
        if len(rows) == 1:
            geom = shapely.box(x0 + c0[0], y0 + rows[0], x0 + c1[0],
                               y0 + rows[0] + 1)
        else:
            geom = shapely.unary_union(
                shapely.box(x0 + c0, y0 + rows, x0 + c1, y0 + rows + 1))
        if tolerance > 0:
            geom = geom.simplify(tolerance, preserve_topology=True)
        polys += [g for g in getattr(geom, 'geoms', [geom])
                  if isinstance(g, Polygon) and g.area >= min_area]
    return MultiPolygon(polys)


def polygons_to_coco(geom: MultiPolygon, keep_holes: bool = False
                     ) -> List[List[float]]:
    """COCO polygon list: one flat [x0, y0, x1, y1, ...] per exterior ring
    (and per hole ring with ``keep_holes``, which only suits consumers that
    apply an even-odd rule; pycocotools does not)."""
    out = []
    for p in geom.geoms:
        rings = [p.exterior] + (list(p.interiors) if keep_holes else [])
        for r in rings:
            xy = np.asarray(r.coords)[:-1]
            if len(xy) >= 3:
                out.append([round(float(v), 2) for v in xy.ravel()])
    return out


def mask_to_rle(mask: np.ndarray) -> Dict:
    """COCO RLE of a (H, W) mask, ``counts`` as a str (JSON-serialisable)."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def _to_np(x):
    if x is None:
        return None
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def instances_to_coco(images: Sequence[Dict],
                      categories: Optional[Sequence[Dict]] = None,
                      segmentation: str = 'auto',
                      tolerance: float = 0.5,
                      min_area: float = 1.0,
                      results_only: bool = False):
    """Build a COCO dataset dict (or a COCO results list).

    Args:
        images: per image a dict with ``file_name``, ``height``, ``width``,
            optional ``id`` (default: 1-based position), ``bboxes`` (K, 4)
            [x1, y1, x2, y2], optional ``masks`` (K, H, W) bool, ``scores``
            (K,), ``labels`` (K,) 0-based category indices.
        categories: COCO categories; default one ``{'id': 1, 'name':
            'object'}``. Label i maps to ``categories[i]['id']``.
        segmentation: ``'auto'``, ``'polygon'`` or ``'rle'`` (module
            docstring).
        tolerance / min_area: polygon simplification (pixels).
        results_only: return the COCO *results* list (annotations with
            ``image_id``, ``category_id``, ``bbox``, ``score``,
            ``segmentation``) instead of a dataset dict.

    Returns:
        dict with ``images``, ``annotations``, ``categories`` (COCO boxes
        [x, y, w, h]; ``area`` = mask area, or box area without mask), or a
        list with ``results_only``.
    """
    if segmentation not in ('auto', 'polygon', 'rle'):
        raise ValueError("segmentation must be 'auto', 'polygon' or 'rle', "
                         f'got {segmentation!r}')
    cats = list(categories or [dict(id=1, name='object')])
    out_images, anns = [], []
    for pos, im in enumerate(images):
        for key in ('file_name', 'height', 'width', 'bboxes'):
            if key not in im:
                raise KeyError(f'instances_to_coco: image {pos} has no '
                               f'{key!r}')
        img_id = int(im.get('id', pos + 1))
        h, w = int(im['height']), int(im['width'])
        out_images.append(dict(id=img_id, file_name=im['file_name'],
                               height=h, width=w))
        boxes = _to_np(im['bboxes']).reshape(-1, 4).astype(np.float64)
        k = len(boxes)
        masks = _to_np(im.get('masks'))
        scores = _to_np(im.get('scores'))
        labels = _to_np(im.get('labels'))
        if masks is not None and masks.shape != (k, h, w):
            raise ValueError(f'instances_to_coco: image {im["file_name"]}: '
                             f'masks {masks.shape} do not match {k} boxes '
                             f'of a {h}x{w} image')
        for j in range(k):
            x1, y1, x2, y2 = boxes[j]
            lab = int(labels[j]) if labels is not None else 0
            if not 0 <= lab < len(cats):
                raise ValueError(f'instances_to_coco: label {lab} has no '
                                 f'category (have {len(cats)})')
            ann = dict(image_id=img_id, category_id=cats[lab]['id'],
                       bbox=[round(float(v), 2)
                             for v in (x1, y1, x2 - x1, y2 - y1)],
                       iscrowd=0,
                       area=float(max(x2 - x1, 0) * max(y2 - y1, 0)))
            if scores is not None:
                ann['score'] = float(scores[j])
            if masks is not None:
                m = masks[j].astype(bool)
                ann['area'] = float(m.sum())
                mode = segmentation
                if mode != 'rle':
                    geom = mask_to_polygons(m, tolerance, min_area)
                    has_holes = any(len(p.interiors) for p in geom.geoms)
                    if mode == 'auto' and (has_holes or geom.is_empty):
                        mode = 'rle'
                    elif mode == 'polygon' and has_holes:
                        warnings.warn(f'{im["file_name"]}: object {j} has '
                                      'holes; COCO polygons drop them')
                if mode == 'rle':
                    ann['segmentation'] = mask_to_rle(m)
                else:
                    ann['segmentation'] = polygons_to_coco(geom)
            anns.append(ann)
    for i, a in enumerate(anns):
        a['id'] = i + 1
    if results_only:
        return [{k: v for k, v in a.items()
                 if k not in ('id', 'iscrowd', 'area')} for a in anns]
    return dict(images=out_images, annotations=anns, categories=cats)


def data_samples_to_coco(data_samples: Sequence,
                         classes: Optional[Sequence[str]] = None,
                         **kwargs):
    """:func:`instances_to_coco` from data samples with ``pred_instances``
    (``bboxes``, optional ``masks``, ``scores``, ``labels``) and the
    ``img_path`` / ``ori_shape`` metainfo (TokenCut, mmdet detectors).

    Args:
        classes: class names indexed by label (e.g. ``model.dataset_meta
            ['classes']``); category ids are label + 1. Default: names
            ``class_<label>`` up to the largest label.
        **kwargs: :func:`instances_to_coco` options.
    """
    images, max_label = [], 0
    for i, s in enumerate(data_samples):
        if 'pred_instances' not in s:
            raise KeyError(f'data sample {i} has no pred_instances')
        inst = s.pred_instances
        h, w = s.metainfo.get('ori_shape', s.metainfo.get('img_shape'))[:2]
        name = s.metainfo.get('img_path') or f'image_{i}'
        labels = inst.labels if 'labels' in inst else None
        if labels is not None and len(labels):
            max_label = max(max_label, int(_to_np(labels).max()))
        images.append(dict(
            file_name=osp.basename(name), height=h, width=w, id=i + 1,
            bboxes=inst.bboxes,
            masks=inst.masks if 'masks' in inst else None,
            scores=inst.scores if 'scores' in inst else None,
            labels=labels))
    names = list(classes) if classes is not None else [
        f'class_{i}' for i in range(max_label + 1)
    ]
    categories = [dict(id=i + 1, name=n) for i, n in enumerate(names)]
    return instances_to_coco(images, categories, **kwargs)


def dump_coco_json(coco, path: str) -> None:
    """Write a COCO dict / results list as JSON (folders created)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(coco, f)
