"""SaliencyDataset, LoadBinaryMask and the saliency dataset configs."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from conftest import REPO_ROOT, shared_path
from vtseg.datasets import SALIENCY_LAYOUTS, LoadBinaryMask, SaliencyDataset
from vtseg.registry import DATASETS, TRANSFORMS

TEST_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadBinaryMask'),
    dict(type='PackSegInputs')
]


def write_pair(root, layout, img_id, shape=(6, 8), mask_values=(0, 255)):
    """An image and a mask with a left half of mask_values[1]."""
    preset = SALIENCY_LAYOUTS[layout]
    img_dir = osp.join(root, preset['img_path'])
    mask_dir = osp.join(root, preset['seg_map_path'])
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(mask_dir, exist_ok=True)
    img = np.full(shape + (3, ), 100, np.uint8)
    cv2.imwrite(osp.join(img_dir, img_id + preset['img_suffix']), img)
    mask = np.full(shape, mask_values[0], np.uint8)
    mask[:, :shape[1] // 2] = mask_values[1]
    cv2.imwrite(osp.join(mask_dir, img_id + preset['seg_map_suffix']), mask)
    return mask


def build(root, **kwargs):
    kwargs.setdefault('pipeline', TEST_PIPELINE)
    return DATASETS.build(
        dict(type='SaliencyDataset', data_root=str(root), **kwargs))


@pytest.mark.parametrize('layout', sorted(SALIENCY_LAYOUTS))
def test_every_layout_preset(tmp_path, layout):
    for img_id in ('b', 'a', 'c'):
        write_pair(tmp_path, layout, img_id)
    ds = build(tmp_path, layout=layout)
    assert len(ds) == 3
    preset = SALIENCY_LAYOUTS[layout]
    assert ds.get_data_info(0)['img_path'] == osp.join(
        str(tmp_path), preset['img_path'], 'a' + preset['img_suffix'])
    sample = ds[1]
    gt = sample['data_samples'].gt_sem_seg.data
    assert tuple(gt.shape) == (1, 6, 8)
    assert set(gt.unique().tolist()) == {0, 1}
    assert (gt[0, :, :4] == 1).all() and (gt[0, :, 4:] == 0).all()
    assert ds.metainfo['classes'] == ('background', 'foreground')


def test_deterministic_split(tmp_path):
    ids = [f'{i:03d}' for i in range(10)]
    for img_id in reversed(ids):
        write_pair(tmp_path, 'folder', img_id)

    def names(ds):
        return [
            osp.basename(ds.get_data_info(i)['img_path'])[:-4]
            for i in range(len(ds))
        ]

    assert names(build(tmp_path)) == ids
    assert names(build(tmp_path, split='train', num_train=7)) == ids[:7]
    assert names(build(tmp_path, split='val', num_train=7)) == ids[7:]
    # a fraction of the ids, rounded
    assert names(build(tmp_path, split='val', num_train=0.75)) == ids[8:]
    assert names(build(tmp_path, split='val', num_train=0)) == ids


def test_ann_file(tmp_path):
    for img_id in ('x1', 'x2', 'x3'):
        write_pair(tmp_path, 'folder', img_id)
    (tmp_path / 'val.txt').write_text('# comment\nx3\n\nx1.jpg\n')
    ds = build(tmp_path, ann_file='val.txt')
    assert [osp.basename(ds.get_data_info(i)['img_path'])
            for i in range(len(ds))] == ['x3.jpg', 'x1.jpg']
    ds = build(tmp_path, ann_file='val.txt', split='train', num_train=1)
    assert len(ds) == 1 and ds.get_data_info(0)['img_path'].endswith('x3.jpg')


def test_overrides_and_images_only(tmp_path):
    os.makedirs(tmp_path / 'rgb')
    os.makedirs(tmp_path / 'lbl')
    cv2.imwrite(str(tmp_path / 'rgb' / 'q.png'), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'lbl' / 'q_mask.png'),
                np.zeros((4, 4), np.uint8))
    ds = build(
        tmp_path,
        data_prefix=dict(img_path='rgb', seg_map_path='lbl'),
        img_suffix='.png',
        seg_map_suffix='_mask.png')
    assert ds.get_data_info(0)['seg_map_path'].endswith('lbl/q_mask.png')
    ds = build(
        tmp_path,
        data_prefix=dict(img_path='rgb', seg_map_path=None),
        img_suffix='.png',
        pipeline=[dict(type='LoadImageFromFile')])
    assert 'seg_map_path' not in ds.get_data_info(0)


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='image folder .*images'):
        build(tmp_path)
    write_pair(tmp_path, 'folder', 'ok')
    write_pair(tmp_path, 'folder', 'lonely')
    os.remove(tmp_path / 'masks' / 'lonely.png')
    with pytest.raises(FileNotFoundError,
                       match=r'1 image\(s\) without mask: .*lonely\.jpg'):
        build(tmp_path)
    os.remove(tmp_path / 'images' / 'lonely.jpg')
    with pytest.raises(FileNotFoundError, match='mask folder .*gt'):
        build(tmp_path, data_prefix=dict(seg_map_path='gt'))
    with pytest.raises(FileNotFoundError, match=r"no image ids .*'\.bmp'"):
        build(tmp_path, img_suffix='.bmp')
    (tmp_path / 'split.txt').write_text('ok\nghost\n')
    with pytest.raises(FileNotFoundError, match='no image: .*ghost.jpg'):
        build(tmp_path, ann_file='split.txt')
    with pytest.raises(ValueError, match='unknown layout'):
        build(tmp_path, layout='pascal-s')
    with pytest.raises(ValueError, match='needs num_train'):
        build(tmp_path, split='val')
    with pytest.raises(ValueError, match='exceeds'):
        build(tmp_path, split='train', num_train=5)
    with pytest.raises(ValueError, match="split 'val' is empty"):
        build(tmp_path, split='val', num_train=1)
    with pytest.raises(ValueError, match='num_train must be'):
        build(tmp_path, split='val', num_train=1.5)

    # unreadable image / mask: the error names the files
    (tmp_path / 'images' / 'ok.jpg').write_bytes(b'not an image')
    ds = build(tmp_path)
    with pytest.raises(RuntimeError, match='cannot load sample 0 .*ok.jpg'):
        ds[0]
    write_pair(tmp_path, 'folder', 'ok')
    (tmp_path / 'masks' / 'ok.png').write_bytes(b'garbage')
    with pytest.raises(RuntimeError, match='cannot decode mask file .*ok.png'):
        build(tmp_path)[0]


def test_warns_on_load_annotations(tmp_path):
    write_pair(tmp_path, 'folder', 'a')
    with pytest.warns(UserWarning, match='LoadBinaryMask'):
        build(tmp_path, pipeline=[dict(type='LoadAnnotations')])


def _load_mask(path, **kwargs):
    t = TRANSFORMS.build(dict(type='LoadBinaryMask', **kwargs))
    return t(dict(seg_map_path=str(path), seg_fields=[],
                  reduce_zero_label=False))['gt_seg_map']


def test_load_binary_mask_formats(tmp_path):
    grey = np.array([[0, 1, 127], [128, 200, 255]], np.uint8)
    Image.fromarray(grey).save(tmp_path / 'grey.png')
    # not binary: the rule binarises at > 127 (docs/reliability.md#masks)
    out = _load_mask(tmp_path / 'grey.png')
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(
        _load_mask(tmp_path / 'grey.png', threshold=0), [[0, 1, 1],
                                                         [1, 1, 1]])
    np.testing.assert_array_equal(
        _load_mask(tmp_path / 'grey.png', ignore_value=255),
        [[0, 0, 0], [1, 1, 255]])
    # binary masks: nonzero is foreground, whatever the foreground value
    Image.fromarray((grey > 100).astype(np.uint8) * 60).save(
        tmp_path / 'two.png')
    np.testing.assert_array_equal(
        _load_mask(tmp_path / 'two.png'), [[0, 0, 1], [1, 1, 1]])
    # 1-bit PNG
    Image.fromarray(grey > 100).save(tmp_path / 'bit.png')
    assert Image.open(tmp_path / 'bit.png').mode == '1'
    np.testing.assert_array_equal(
        _load_mask(tmp_path / 'bit.png'), [[0, 0, 1], [1, 1, 1]])
    # RGB: any colour channel; RGBA: the (opaque) alpha is ignored
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 1, 2] = 255
    Image.fromarray(rgb).save(tmp_path / 'rgb.png')
    rgba = np.concatenate([rgb, np.full((2, 3, 1), 255, np.uint8)], 2)
    Image.fromarray(rgba).save(tmp_path / 'rgba.png')
    for name in ('rgb.png', 'rgba.png'):
        np.testing.assert_array_equal(
            _load_mask(tmp_path / name), [[0, 1, 0], [0, 0, 0]])
    with pytest.raises(FileNotFoundError, match='missing.png'):
        _load_mask(tmp_path / 'missing.png')
    t = LoadBinaryMask()
    with pytest.raises(ValueError, match='reduce_zero_label'):
        t(dict(seg_map_path=str(tmp_path / 'grey.png'), seg_fields=[],
               reduce_zero_label=True))


# ---------------------------------------------------------------------------
# Real data and configs.
def test_sod_bsds_real_data():
    root = shared_path('sod_bsds')
    ds = SaliencyDataset(data_root=root, pipeline=TEST_PIPELINE)
    assert len(ds) == 150
    train = SaliencyDataset(data_root=root, split='train', num_train=100)
    val = SaliencyDataset(data_root=root, split='val', num_train=100)
    paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    assert paths == sorted(paths)
    assert [train.get_data_info(i)['img_path'] for i in range(100)] \
        == paths[:100]
    assert [val.get_data_info(i)['img_path'] for i in range(50)] \
        == paths[100:]
    for i in (0, 149):
        sample = ds[i]
        gt = sample['data_samples'].gt_sem_seg.data
        img = sample['inputs']
        assert gt.shape[1:] == img.shape[1:]
        assert set(gt.unique().tolist()) <= {0, 1} and gt.sum() > 0
        raw = np.array(Image.open(ds.get_data_info(i)['seg_map_path']))
        np.testing.assert_array_equal(gt[0].numpy(), raw != 0)


def test_sod_bsds_config():
    root = shared_path('sod_bsds')
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/_base_/datasets/sod_bsds.py'))
    keys = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for k in keys:  # the config's default is ../shared/data (repo-relative)
        cfg[k].dataset.data_root = root
    sizes = {k: len(DATASETS.build(cfg[k].dataset)) for k in keys}
    sample = DATASETS.build(cfg.test_dataloader.dataset)[0]
    assert sizes == dict(
        train_dataloader=100, val_dataloader=50, test_dataloader=150)
    # longest side resized to 224, mask kept at the original 481x321
    assert max(sample['inputs'].shape[1:]) == 224
    assert sorted(sample['data_samples'].gt_sem_seg.data.shape[1:]) \
        == [321, 481]
    assert cfg.test_evaluator.type == 'SaliencyMetric'


def test_saliency_folder_config(tmp_path):
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/_base_/datasets/saliency_folder.py'))
    write_pair(tmp_path, 'ecssd', 'e1', mask_values=(0, 130))
    write_pair(tmp_path, 'duts-te', 'd1', mask_values=(0, 100))
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.data_root = str(tmp_path)
    gt = DATASETS.build(ds_cfg)[0]['data_samples'].gt_sem_seg.data
    assert gt.sum() == 6 * 4  # 130 > 127: foreground
    ds_cfg.layout = 'duts-te'
    gt = DATASETS.build(ds_cfg)[0]['data_samples'].gt_sem_seg.data
    assert gt.sum() == 6 * 4  # a binary 0/100 mask: nonzero is foreground
