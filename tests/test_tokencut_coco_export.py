"""COCO JSON export of discovered objects (vtseg.utils.coco_export)."""
import json

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData
from mmseg.structures import SegDataSample
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from vtseg.utils.coco_export import (data_samples_to_coco, dump_coco_json,
                                     instances_to_coco, mask_to_polygons)


def decode_polygons(seg, h, w):
    return mask_utils.decode(mask_utils.merge(
        mask_utils.frPyObjects(seg, h, w))).astype(bool)


def test_rectangle_polygon_follows_pixel_edges():
    m = np.zeros((20, 30), bool)
    m[3:9, 5:17] = True
    geom = mask_to_polygons(m, tolerance=0)
    assert len(geom.geoms) == 1
    assert geom.bounds == (5.0, 3.0, 17.0, 9.0)
    assert geom.area == pytest.approx(m.sum())
    coco = instances_to_coco([dict(file_name='a.png', height=20, width=30,
                                   bboxes=[[5, 3, 17, 9]], masks=m[None])])
    seg = coco['annotations'][0]['segmentation']
    assert isinstance(seg, list)
    np.testing.assert_array_equal(decode_polygons(seg, 20, 30), m)


def test_holes_are_kept_in_geometry_and_written_as_rle():
    m = np.zeros((30, 30), bool)
    m[2:28, 2:28] = True
    m[10:20, 10:20] = False  # a hole
    m[14:16, 14:16] = True  # an island inside the hole
    geom = mask_to_polygons(m, tolerance=0)
    outer = max(geom.geoms, key=lambda p: p.area)
    assert len(outer.interiors) == 1
    assert geom.area == pytest.approx(m.sum())
    ann = instances_to_coco([dict(file_name='b', height=30, width=30,
                                  bboxes=[[2, 2, 28, 28]], masks=m[None],
                                  scores=[0.7])])['annotations'][0]
    assert isinstance(ann['segmentation'], dict)  # auto: holes -> RLE
    np.testing.assert_array_equal(
        mask_utils.decode(ann['segmentation']).astype(bool), m)
    assert ann['area'] == m.sum() and ann['bbox'] == [2, 2, 26, 26]
    with pytest.warns(UserWarning, match='holes'):
        instances_to_coco([dict(file_name='b', height=30, width=30,
                                bboxes=[[2, 2, 28, 28]], masks=m[None])],
                          segmentation='polygon')


def test_data_samples_round_trip_through_pycocotools(tmp_path):
    s = SegDataSample()
    s.set_metainfo(dict(img_path='/x/img1.jpg', ori_shape=(40, 50)))
    masks = torch.zeros(2, 40, 50, dtype=torch.bool)
    masks[0, 5:20, 5:25] = True
    masks[1, 30:38, 40:48] = True
    s.pred_instances = InstanceData(
        bboxes=torch.tensor([[5., 5., 25., 20.], [40., 30., 48., 38.]]),
        scores=torch.tensor([0.9, 0.4]), labels=torch.tensor([1, 1]),
        masks=masks)
    coco = data_samples_to_coco([s], classes=('background', 'foreground'))
    assert [c['name'] for c in coco['categories']] == ['background',
                                                       'foreground']
    assert {a['category_id'] for a in coco['annotations']} == {2}
    path = tmp_path / 'out' / 'objects.json'
    dump_coco_json(coco, str(path))
    api = COCO(str(path))
    assert len(api.getAnnIds()) == 2
    for ann, m in zip(api.loadAnns(api.getAnnIds()), masks.numpy()):
        np.testing.assert_array_equal(api.annToMask(ann).astype(bool), m)
    res = data_samples_to_coco([s], results_only=True)
    assert res[0]['score'] == pytest.approx(0.9) and 'id' not in res[0]
    json.dumps(res)


def test_boxes_only_and_errors():
    coco = instances_to_coco([dict(file_name='c', height=10, width=10,
                                   bboxes=np.array([[1, 2, 5, 9]]))])
    ann = coco['annotations'][0]
    assert ann['bbox'] == [1, 2, 4, 7] and ann['area'] == 28
    assert 'segmentation' not in ann
    with pytest.raises(ValueError, match='masks'):
        instances_to_coco([dict(file_name='c', height=10, width=10,
                                bboxes=[[0, 0, 1, 1]],
                                masks=np.zeros((1, 5, 5), bool))])
    with pytest.raises(KeyError, match='height'):
        instances_to_coco([dict(file_name='c', bboxes=[[0, 0, 1, 1]])])
    with pytest.raises(ValueError, match='category'):
        instances_to_coco([dict(file_name='c', height=3, width=3,
                                bboxes=[[0, 0, 1, 1]], labels=[4])])
