"""Detection data: PennFudanDetDataset (real folder, fixed split, bad
annotation files), coco128 through mmdet's CocoDataset, and discovery
outputs scored by mmdet's CocoMetric / VOCMetric (docs/detection.md)."""
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from mmseg.structures import SegDataSample
from PIL import Image

from vtseg.datasets import (BadAnnotationError, PennFudanDetDataset,
                            parse_pennfudan_annotation)
from vtseg.evaluation import (centred_box_sample, class_agnostic_coco,
                              score_coco, score_voc, to_det_sample)

from conftest import shared_path

PIPE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs')
]


def pf(**kw):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return PennFudanDetDataset(**kw)


def test_pennfudan_det_real_split_boxes_and_masks():
    root = shared_path('pennfudanped')
    tr = pf(data_root=root, split='train', pipeline=[])
    va = pf(data_root=root, split='val', pipeline=PIPE, test_mode=True)
    assert (len(tr), len(va)) == (34, 16)
    n = [sum(len(d.get_data_info(i)['instances']) for i in range(len(d)))
         for d in (tr, va)]
    assert n == [99, 40]
    names = {osp.basename(va.get_data_info(i)['img_path'])
             for i in range(len(va))}
    assert not names & {osp.basename(tr.get_data_info(i)['img_path'])
                        for i in range(len(tr))}
    # the ConnNet split: every 3rd sorted name
    allnames = sorted(os.listdir(osp.join(root, 'PNGImages')))
    assert names == set(allnames[2::3])
    with DefaultScope.overwrite_default_scope('mmdet'):
        item = va[0]
    gt = item['data_samples'].gt_instances
    assert len(gt) == len(gt.masks) >= 1
    masks = gt.masks.to_ndarray()
    for box, m in zip(gt.bboxes.tensor.numpy(), masks):
        ys, xs = np.nonzero(m)
        # the annotated box encloses its mask (box from Annotation/*.txt)
        assert box[0] <= xs.min() + 1 and xs.max() + 1 <= box[2] + 1
        assert box[1] <= ys.min() + 1 and ys.max() + 1 <= box[3] + 1


def fake_root(tmp_path, text, mask_ids=(1, ), size=(40, 30)):
    """One-image Penn-Fudan folder with the given annotation text."""
    for d in ('PNGImages', 'PedMasks', 'Annotation'):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    w, h = size
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(
        tmp_path / 'PNGImages' / 'A1.png')
    ids = np.zeros((h, w), np.uint8)
    for i in mask_ids:
        ids[5:20, 5 + 10 * (i - 1):12 + 10 * (i - 1)] = i
    Image.fromarray(ids).save(tmp_path / 'PedMasks' / 'A1_mask.png')
    if text is not None:
        (tmp_path / 'Annotation' / 'A1.txt').write_text(text)
    return str(tmp_path)


def box_line(i, x1, y1, x2, y2):
    return (f'Bounding box for object {i} "PASpersonWalking" (Xmin, Ymin) - '
            f'(Xmax, Ymax) : ({x1}, {y1}) - ({x2}, {y2})\n')


def test_pennfudan_annotation_parsing_is_zero_based(tmp_path):
    p = tmp_path / 'a.txt'
    p.write_text('Image size (X x Y x C) : 40 x 30 x 3\n' +
                 box_line(1, 1, 1, 10, 20))
    wh, boxes = parse_pennfudan_annotation(str(p))
    assert wh == (40, 30) and boxes == [(1, [0.0, 0.0, 10.0, 20.0])]


def test_pennfudan_bad_files_error_or_skip(tmp_path):
    # missing annotation file
    root = fake_root(tmp_path / 'missing', None)
    with pytest.raises(FileNotFoundError, match='A1.txt'):
        pf(data_root=root, pipeline=[])
    with pytest.warns(UserWarning, match='A1.txt'), pytest.raises(
            BadAnnotationError, match='no usable image left'):
        pf(data_root=root, pipeline=[], on_bad='skip')
    # empty file
    root = fake_root(tmp_path / 'empty', '')
    with pytest.raises(BadAnnotationError, match='A1.txt is empty'):
        pf(data_root=root, pipeline=[])
    # box wholly outside the image
    root = fake_root(tmp_path / 'outside', box_line(1, 6, 6, 12, 20) +
                     box_line(2, 50, 40, 60, 45), mask_ids=(1, 2))
    with pytest.raises(BadAnnotationError,
                       match=r'A1.txt: object 2 .* outside'):
        pf(data_root=root, pipeline=[])
    with pytest.warns(UserWarning, match='object 2'):
        ds = pf(data_root=root, pipeline=[], on_bad='skip')
    assert len(ds.get_data_info(0)['instances']) == 1
    # box partly outside: clipped, with a warning
    root = fake_root(tmp_path / 'partly', box_line(1, 0, -3, 45, 20))
    with pytest.warns(UserWarning, match='clipped'):
        ds = pf(data_root=root, pipeline=[])
    assert ds.get_data_info(0)['instances'][0]['bbox'] == [0., 0., 40., 20.]
    # a mask id without a box
    root = fake_root(tmp_path / 'extra', box_line(1, 6, 6, 12, 20),
                     mask_ids=(1, 2))
    with pytest.raises(BadAnnotationError, match=r'ids \[2\] without a box'):
        pf(data_root=root, pipeline=[])
    # unparsable box line
    root = fake_root(tmp_path / 'garbled',
                     'Bounding box for object 1 : (a, b) - (c, d)\n')
    with pytest.raises(BadAnnotationError, match='cannot parse'):
        pf(data_root=root, pipeline=[])


def test_coco_polygon_with_fewer_than_3_points_is_ignored(tmp_path):
    """mmdet's documented behaviour, which vtseg relies on for COCO files:
    a polygon of < 3 points is dropped by LoadAnnotations and its object
    becomes an ignored instance (not a crash)."""
    img = tmp_path / 'a.jpg'
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(img)
    coco = dict(images=[dict(id=1, file_name='a.jpg', height=20, width=30)],
                categories=[dict(id=1, name='thing')],
                annotations=[
                    dict(id=1, image_id=1, category_id=1, iscrowd=0,
                         bbox=[2, 2, 10, 10], area=100,
                         segmentation=[[2, 2, 12, 2, 12, 12, 2, 12]]),
                    dict(id=2, image_id=1, category_id=1, iscrowd=0,
                         bbox=[15, 5, 5, 5], area=25,
                         segmentation=[[15, 5, 20, 10]])])
    ann = tmp_path / 'a.json'
    ann.write_text(json.dumps(coco))
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.datasets import CocoDataset
        ds = CocoDataset(ann_file=str(ann), data_prefix=dict(img=str(
            tmp_path)), metainfo=dict(classes=('thing', )), pipeline=PIPE)
        out = ds[0]['data_samples']
    assert len(out.gt_instances) == 1
    assert len(out.ignored_instances) == 1


def test_coco128_reads_with_mmdet_cocodataset():
    root = shared_path('coco128')
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.datasets import CocoDataset
        ds = CocoDataset(data_root=root,
                         ann_file='annotations/instances_train2017.json',
                         data_prefix=dict(img='train2017/'), test_mode=True,
                         pipeline=[])
    assert 120 <= len(ds) <= 128  # images without annotations kept in test
    info = ds.get_data_info(0)
    assert info['instances'] and len(info['instances'][0]['bbox']) == 4


def toy_coco(tmp_path):
    coco = dict(
        images=[dict(id=7, file_name='x.jpg', height=40, width=60),
                dict(id=9, file_name='y.jpg', height=50, width=50)],
        categories=[dict(id=3, name='cat'), dict(id=5, name='dog')],
        annotations=[
            dict(id=1, image_id=7, category_id=3, bbox=[5, 5, 20, 10],
                 area=200, iscrowd=0,
                 segmentation=[[5, 5, 25, 5, 25, 15, 5, 15]]),
            dict(id=2, image_id=7, category_id=5, bbox=[30, 20, 20, 15],
                 area=300, iscrowd=0,
                 segmentation=[[30, 20, 50, 20, 50, 35, 30, 35]]),
            dict(id=3, image_id=9, category_id=5, bbox=[10, 10, 30, 30],
                 area=900, iscrowd=0,
                 segmentation=[[10, 10, 40, 10, 40, 40, 10, 40]])])
    src = tmp_path / 'gt.json'
    src.write_text(json.dumps(coco))
    return str(src), coco


def seg_sample(boxes, shape, scores=None):
    s = SegDataSample(metainfo=dict(ori_shape=shape, img_path='x.jpg'))
    b = torch.tensor(boxes, dtype=torch.float32)
    m = torch.zeros(len(boxes), *shape, dtype=torch.bool)
    for i, (x1, y1, x2, y2) in enumerate(b.long().tolist()):
        m[i, y1:y2, x1:x2] = True
    s.pred_instances = InstanceData(
        bboxes=b, masks=m, labels=torch.ones(len(boxes), dtype=torch.long),
        scores=torch.tensor(scores or [1.0] * len(boxes)))
    return s


def test_discovery_scored_class_agnostic_by_mmdet(tmp_path):
    src, _ = toy_coco(tmp_path)
    agn_file = str(tmp_path / 'agn.json')
    agn = class_agnostic_coco(src, agn_file)
    assert {a['category_id'] for a in agn['annotations']} == {1}
    # multi-object discovery finding every object (other classes too)
    perfect = [to_det_sample(seg_sample([[5, 5, 25, 15], [30, 20, 50, 35]],
                                        (40, 60), [0.9, 0.8]), 7),
               to_det_sample(seg_sample([[10, 10, 40, 40]], (50, 50)), 9)]
    assert perfect[0].pred_instances.labels.tolist() == [0, 0]
    res = score_coco(perfect, agn_file)
    assert res['bbox_mAP'] == pytest.approx(1.0)
    assert res['segm_mAP'] > 0.9
    assert score_voc(perfect, agn)['mAP'] == pytest.approx(1.0)
    # single-object: the first object only finds 2 of 3
    single = [to_det_sample(seg_sample([[5, 5, 25, 15], [30, 20, 50, 35]],
                                       (40, 60)), 7, max_objects=1),
              perfect[1]]
    assert 0.3 < score_coco(single, agn_file, ('bbox', ))['bbox_mAP'] < 0.9
    # the centred box misses the small objects
    centred = [centred_box_sample(7, (40, 60)), centred_box_sample(9,
                                                                   (50, 50))]
    assert centred[0].pred_instances.bboxes.tolist() == [[15., 10., 45.,
                                                          30.]]
    assert score_coco(centred, agn_file)['bbox_mAP'] < 0.5
    # a fixed subset of the images
    sub = class_agnostic_coco(src, str(tmp_path / 'sub.json'), [9])
    assert [im['id'] for im in sub['images']] == [9]
    assert len(sub['annotations']) == 1
    with pytest.raises(ValueError, match='no image with id'):
        class_agnostic_coco(src, str(tmp_path / 'bad.json'), [123])
