"""ToCoSegmentor (tiny, random init): training steps without NaN / inf on
all-background and all-ignore crops, determinism, predictions; the
image-label datasets' bad-input errors; evaluation on real VOC images."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from conftest import REPO_ROOT, shared_path
from vtseg.analysis import Confusion, check_masks, evaluate_wsss
from vtseg.datasets import VOCImageLabelDataset, read_image_label_csv
from vtseg.registry import MODELS

VOC = ('voc2012_subset', 'VOC2012')


def tiny_cfg(**kw):
    cfg = dict(
        type='ToCoSegmentor',
        data_preprocessor=dict(
            type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
            seg_pad_val=255),
        backbone=dict(type='ViT', img_size=32, patch_size=8, embed_dims=32,
                      depth=3, num_heads=2, mlp_ratio=2, out_indices=-1),
        decode_head=dict(type='LargeFOVHead', in_channels=32, channels=16,
                         dilation=2, num_classes=4,
                         loss_decode=dict(type='CrossEntropyLoss')),
        proj_head=dict(type='DINOProjHead', in_dims=32, out_dims=24,
                       hidden_dims=32, bottleneck_dims=8),
        aux_layer=-2, cam_scales=(1.0, 0.5), num_local_crops=3,
        local_crop_size=16, seg_start_iter=-1,
        par=dict(dilations=(1, 2), num_iter=2))
    cfg.update(kw)
    return cfg


def samples(labels, shapes, size=(48, 48)):
    out = []
    for lab, shape in zip(labels, shapes):
        ds = SegDataSample()
        ds.set_metainfo(dict(img_labels=np.array(lab, np.float32),
                             img_shape=shape, ori_shape=shape,
                             pad_shape=size, img_path='x.jpg'))
        out.append(ds)
    return out


def step(model, inputs, data_samples):
    losses = model.loss(inputs, data_samples)
    total = sum(losses.values())
    total.backward()
    return losses


def test_training_step_finite_all_background_and_all_ignore():
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg())
    model.init_weights()
    model.train()
    x = torch.randn(3, 3, 48, 48)
    # image 0 full, image 1 half padded, image 2: an empty valid box, so
    # every pseudo label is ignore; classifier zeroed -> every CAM is 0 ->
    # pseudo labels all background (or ignore)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.aux_classifier.weight.zero_()
    ds = samples([[1, 0, 0], [0, 1, 1], [0, 0, 1]],
                 [(48, 48), (24, 40), (0, 0)])
    losses = step(model, x, ds)
    assert set(losses) == {'loss_cls', 'loss_aux', 'loss_ctc', 'loss_ptc',
                           'loss_seg'}
    for k, v in losses.items():
        assert torch.isfinite(v), k
    for n, p in model.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), n
    # the pseudo labels of that step really are background / ignore only
    with torch.no_grad():
        cam, _ = model.multi_scale_cam(x)
        boxes = model.valid_boxes(ds, x.device)
        target = model.pseudo_label(x, cam, model.image_labels(ds), boxes)
    assert set(target.unique().tolist()) <= {0, 255}
    assert (target[2] == 255).all()
    # the reference's loss is NaN on exactly that batch (faithful)
    faithful = MODELS.build(tiny_cfg(faithful=True,
                                     loss_seg=dict(type='BalancedSegLoss',
                                                   faithful=True)))
    faithful.load_state_dict(model.state_dict())
    faithful.train()
    assert torch.isnan(faithful.loss(x, ds)['loss_seg'])


def test_training_steps_deterministic_and_schedule():
    def run():
        torch.manual_seed(0)
        model = MODELS.build(tiny_cfg(seg_start_iter=0))
        model.init_weights()
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        x = torch.randn(2, 3, 48, 48, generator=torch.Generator()
                        .manual_seed(1))
        ds = samples([[1, 0, 1], [0, 1, 0]], [(48, 48), (48, 40)])
        out = []
        for _ in range(2):
            opt.zero_grad()
            losses = step(model, x, ds)
            opt.step()
            out.append({k: float(v) for k, v in losses.items()})
        return out, model

    a, model = run()
    b, _ = run()
    assert a == b
    assert a[0]['loss_seg'] == 0.0  # counter 0 <= seg_start_iter 0
    assert a[1]['loss_seg'] > 0.0
    assert int(model.iter) == 2
    # the EMA teacher moved toward the student, and got no gradient
    t = model.proj_head_t.module.last_layer_v
    assert not t.requires_grad
    assert not torch.equal(t, model.proj_head.last_layer_v)


def test_plain_cam_baseline_skips_branches():
    model = MODELS.build(tiny_cfg(aux_weight=0.0,
                                  loss_ptc=dict(type='PTCLoss',
                                                loss_weight=0.0),
                                  loss_ctc=dict(type='CTCLoss',
                                                loss_weight=0.0)))
    model.train()
    losses = model.loss(torch.randn(1, 3, 48, 48),
                        samples([[1, 0, 0]], [(48, 48)]))
    assert set(losses) == {'loss_cls', 'loss_seg'}


def test_missing_image_labels_is_a_clear_error():
    model = MODELS.build(tiny_cfg())
    ds = SegDataSample()
    ds.set_metainfo(dict(img_shape=(48, 48), img_path='a/b.jpg'))
    with pytest.raises(KeyError, match='b.jpg'):
        model.loss(torch.randn(1, 3, 48, 48), [ds])


def test_faithful_ptc_box():
    model = MODELS.build(tiny_cfg())
    box = torch.tensor([[0, 48, 0, 40], [10, 48, 0, 48]])
    assert model.ptc_token_box(box, (6, 6)).tolist() == [[0, 6, 0, 5],
                                                         [1, 6, 0, 6]]
    model.faithful = True
    assert torch.equal(model.ptc_token_box(box, (6, 6)), box)


@pytest.mark.parametrize('output', ['seg', 'cam', 'aux_cam', 'par'])
def test_predict_outputs(output):
    model = MODELS.build(tiny_cfg(test_cfg=dict(output=output)))
    model.eval()
    ds = samples([[1, 0, 1]], [(40, 44)])
    ds[0].set_metainfo(dict(ori_shape=(50, 60)))
    out = model.predict(torch.randn(1, 3, 40, 44), ds)[0]
    pred = out.pred_sem_seg.data
    assert pred.shape == (1, 50, 60)
    allowed = {0, 1, 3} | ({255} if output == 'par' else set())
    if output != 'seg':
        assert set(pred.unique().tolist()) <= allowed
    with pytest.raises(ValueError, match='output'):
        MODELS.build(tiny_cfg(test_cfg=dict(output='bad')))


# ------------------------------------------------------------ datasets
def make_voc(tmp_path, masks, csv_text=None, drop_mask=()):
    root = tmp_path / 'VOC2012'
    for d in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        (root / d).mkdir(parents=True)
    ids = []
    for i, m in enumerate(masks):
        key = f'img{i}'
        ids.append(key)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(
            root / 'JPEGImages' / f'{key}.jpg')
        if i not in drop_mask:
            Image.fromarray(np.asarray(m, np.uint8)).save(
                root / 'SegmentationClass' / f'{key}.png')
    (root / 'ImageSets/Segmentation/val.txt').write_text('\n'.join(ids))
    if csv_text is not None:
        (root / 'labels.csv').write_text(csv_text)
    return str(root)


def voc_dataset(root, **kw):
    return VOCImageLabelDataset(
        data_root=root, data_prefix=dict(img_path='JPEGImages',
                                         seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt', pipeline=[], **kw)


def test_dataset_labels_from_masks_and_no_positive(tmp_path):
    m0 = np.zeros((8, 8)); m0[:2] = 15; m0[5:] = 255  # noqa: E702
    m1 = np.zeros((8, 8))  # background only
    root = make_voc(tmp_path, [m0, m1])
    with pytest.raises(ValueError, match='img1.*no positive class'):
        voc_dataset(root)
    ds = voc_dataset(root, no_positive='skip')
    assert len(ds) == 1
    assert np.flatnonzero(ds.get_data_info(0)['img_labels']).tolist() == \
        [14]  # person


def test_dataset_csv_errors(tmp_path):
    m = np.ones((8, 8))
    root = make_voc(tmp_path, [m], 'id,aeroplane,unicorn\nimg0,1,0\n')
    with pytest.raises(ValueError, match="labels.csv.*unknown class name "
                       "'unicorn'"):
        voc_dataset(root, label_file='labels.csv')
    root2 = make_voc(tmp_path / 'b', [m], 'id,aeroplane,cat\nimgX,1,0\n')
    with pytest.raises(KeyError, match='img0'):
        voc_dataset(root2, label_file='labels.csv')
    with pytest.raises(ValueError, match='not 0 or 1'):
        read_image_label_csv(_write(tmp_path / 'c.csv', 'id,cat\nimg0,2\n'),
                             ['aeroplane', 'cat'])


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_missing_mask_at_evaluation(tmp_path):
    m = np.ones((8, 8))
    root = make_voc(tmp_path, [m, m], 'id,aeroplane\nimg0,1\nimg1,1\n',
                    drop_mask=(1,))
    ds = voc_dataset(root, label_file='labels.csv')
    with pytest.raises(FileNotFoundError, match='img1.*mask'):
        check_masks(ds)
    assert check_masks(ds, 'skip') == [0]
    # deriving labels from a missing mask names it too
    with pytest.raises(FileNotFoundError, match='img1.png'):
        voc_dataset(root)


def test_confusion_removes_ignored_predictions():
    c = Confusion(3)
    c.update(np.array([[0, 1, 255, 2]]), np.array([[0, 1, 1, 255]]))
    s = c.summary(['a', 'b', 'c'])
    assert s['mIoU'] == pytest.approx(100.0)
    assert s['ignored'] == pytest.approx(1 / 3)


# -------------------------------------------------- real VOC images (tiny)
def test_real_voc_images_tiny_model(tmp_path):
    """Two real VOC train images through a training step (labels from the
    subset's CSV) and two val images through every evaluation output."""
    root = shared_path(*VOC)
    from mmengine.dataset import pseudo_collate
    from vtseg.registry import DATASETS
    meta = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
            'pad_shape', 'scale_factor', 'flip', 'flip_direction',
            'reduce_zero_label', 'img_labels')
    common = dict(type='VOCImageLabelDataset', data_root=root,
                  label_file='image_level_labels.csv',
                  data_prefix=dict(img_path='JPEGImages',
                                   seg_map_path='SegmentationClass'))
    train = DATASETS.build(dict(common, ann_file=(
        'ImageSets/Segmentation/train.txt'), pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='RandomCrop', crop_size=(64, 64)),
            dict(type='PackSegInputs', meta_keys=meta)]))
    val = DATASETS.build(dict(common, ann_file=(
        'ImageSets/Segmentation/val.txt'), pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(64, 64), keep_ratio=True),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs', meta_keys=meta)]))
    cfg = tiny_cfg(decode_head=dict(type='LargeFOVHead', in_channels=32,
                                    channels=16, dilation=2, num_classes=21,
                                    loss_decode=dict(
                                        type='CrossEntropyLoss')))
    cfg['data_preprocessor']['size'] = (64, 64)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.train()
    data = model.data_preprocessor(pseudo_collate([train[0], train[1]]),
                                   True)
    losses = step(model, data['inputs'], data['data_samples'])
    assert all(torch.isfinite(v) for v in losses.values())
    res = evaluate_wsss(model, val, ('cam', 'aux_cam', 'par', 'seg'),
                        indices=[0, 1], save_dir=str(tmp_path), progress=0)
    for o in ('cam', 'aux_cam', 'par', 'seg'):
        assert 0.0 <= res[o]['mIoU'] <= 100.0
        assert osp.isfile(tmp_path / o / (osp.splitext(osp.basename(
            val.get_data_info(0)['img_path']))[0] + '.png'))
    assert res['par']['ignored'] >= 0.0


def test_toco_cam_tool_refuses_to_overwrite(tmp_path):
    import sys
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
    import toco_cam
    out = tmp_path / 'res.json'
    out.write_text('{}')
    with pytest.raises(SystemExit, match='exists.*--force'):
        toco_cam.main(['cfg.py', 'ckpt.pth', '--out', str(out)])


def test_dense_crf_smooths_an_isolated_pixel():
    """The optional CRF (pydensecrf, the ``wsss`` extra; skipped without
    it): a read-only image is accepted, the output is a distribution per
    pixel, and one pixel that disagrees with a uniform region follows it."""
    pytest.importorskip('pydensecrf.densecrf',
                        reason='pydensecrf not installed (pip install -e '
                        '.[wsss])')
    from vtseg.analysis.toco_eval import dense_crf
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, 8:] = 200
    image.setflags(write=False)
    probs = np.zeros((2, 16, 16), np.float32)
    probs[0, :, :8], probs[1, :, :8] = 0.8, 0.2
    probs[0, :, 8:], probs[1, :, 8:] = 0.2, 0.8
    probs[:, 4, 3] = (0.45, 0.55)  # a weak outlier in the left region
    out = dense_crf(image, probs)
    assert out.shape == (2, 16, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(0), 1, atol=1e-4)
    labels = out.argmax(0)
    assert labels[4, 3] == 0
    assert (labels[:, :8] == 0).all() and (labels[:, 8:] == 1).all()
