"""TokenCut segmentors, datasets, transforms and metrics (tiny models, a few
real images)."""
import importlib
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData, PixelData
from mmseg.structures import SegDataSample

from conftest import REPO_ROOT, shared_path
from vtseg.registry import DATASETS, METRICS, MODELS, TRANSFORMS

from vtseg.datasets import object_discovery as od
from vtseg.functional import normalized_cut as nc
from vtseg.models.segmentors import tokencut as tc

TINY_VIT = dict(type='ViT', img_size=32, patch_size=8, embed_dims=32,
                depth=2, num_heads=2, mlp_ratio=2, out_indices=-1)


def tiny_model(**kw):
    torch.manual_seed(0)
    cfg = dict(type='TokenCut', backbone=TINY_VIT,
               data_preprocessor=dict(type='TokenCutDataPreProcessor',
                                      size_divisor=8))
    cfg.update(kw)
    model = MODELS.build(cfg)
    model.init_weights()
    with torch.no_grad():  # a visible qkv bias, as in DINOv2-style keys
        model.backbone.blocks[-1].attn.qkv.bias.normal_(0, 3)
    return model.eval()


def image_batch(model, sizes, seed=0):
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for i, (h, w) in enumerate(sizes):
        img = rng.integers(0, 255, (3, h, w), dtype=np.uint8)
        img[:, h // 4:h // 2, w // 4:w // 2] = 250  # a bright object
        inputs.append(torch.from_numpy(img))
        s = SegDataSample()
        s.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w)))
        samples.append(s)
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples))


# --------------------------------------------------------------- features
def test_feature_choices():
    model = tiny_model()
    bb = model.backbone
    x = torch.randn(1, 3, 24, 40)
    out = bb.forward_features(x, qkv_layers=[1], token_layers=[1],
                              out_indices=[])
    k, _ = tc.extract_token_features(bb, x, 'k')
    kb, hw = tc.extract_token_features(bb, x, 'k_nobias')
    assert hw == (3, 5) and k.shape == (1, 15, 32)
    bias = bb.blocks[1].attn.qkv.bias[32:64]
    torch.testing.assert_close(kb, k - bias)
    raw_k = out['qkv'][1][1]  # (B, heads, T, hd)
    torch.testing.assert_close(
        k[0, :, :16], raw_k[0, 0, 1:])  # head 0 first, cls dropped
    torch.testing.assert_close(k[0, :, 16:], raw_k[0, 1, 1:])
    kqv, _ = tc.extract_token_features(bb, x, 'kqv')
    assert kqv.shape[-1] == 96
    tok, _ = tc.extract_token_features(bb, x, 'tokens', layer=0)
    torch.testing.assert_close(tok, bb.forward_features(
        x, token_layers=[0], out_indices=[])['tokens'][0][:, 1:])
    tn, _ = tc.extract_token_features(bb, x, 'tokens_norm')
    torch.testing.assert_close(tn, bb.norm(out['tokens'][1])[:, 1:])
    kc, _ = tc.extract_token_features(bb, x, 'k', center=True)
    torch.testing.assert_close(kc.mean(1), torch.zeros(1, 32), atol=1e-5,
                               rtol=0)
    with pytest.raises(ValueError, match='feature'):
        tc.extract_token_features(bb, x, 'keys')
    with pytest.raises(ValueError, match='out of range'):
        tc.extract_token_features(bb, x, 'k', layer=5)


# -------------------------------------------------------------- discovery
def test_discovery_outputs_and_box_matches_functional():
    model = tiny_model(feature='k_nobias')
    data = image_batch(model, [(40, 50)])
    with torch.no_grad():
        sample = model.predict(**data)[0]
    inst = sample.pred_instances
    assert inst.bboxes.shape == (1, 4) and inst.bboxes.dtype == torch.float32
    assert inst.masks.shape == (1, 40, 50) and inst.masks.dtype == torch.bool
    assert inst.labels.tolist() == [1] and inst.scores.shape == (1, )
    assert sample.pred_sem_seg.data.shape == (1, 40, 50)
    assert sample.seg_logits.data.shape == (1, 40, 50)
    feats, hw = model.extract_feat(data['inputs'][:, :, :40, :50])
    part, vec, seed = nc.ncut(feats[0], hw)
    box, comp = nc.ncut_box(part.numpy(), seed, 8, (40, 50))
    np.testing.assert_allclose(inst.bboxes[0].numpy(), box)
    up = np.kron(comp, np.ones((8, 8)))[:40, :50].astype(bool)
    np.testing.assert_array_equal(inst.masks[0].numpy(), up)
    assert sample.seed == seed


def test_batch_results_do_not_depend_on_other_images():
    model = tiny_model(feature='k_nobias')
    alone = image_batch(model, [(40, 50)], seed=1)
    both = image_batch(model, [(40, 50), (64, 72)], seed=1)
    assert both['inputs'].shape[-2:] == (64, 72)
    with torch.no_grad():
        a = model.predict(**alone)[0]
        b = model.predict(**both)[0]
    torch.testing.assert_close(a.pred_instances.bboxes,
                               b.pred_instances.bboxes)
    assert torch.equal(a.pred_instances.masks, b.pred_instances.masks)


def test_saliency_mode_with_bilateral_solver_and_multi_objects():
    model = tiny_model(mode='saliency', bilateral_solver=dict())
    data = image_batch(model, [(48, 56)])
    with torch.no_grad():
        s = model.predict(**data)[0]
    soft = s.seg_logits.data
    assert soft.shape == (1, 48, 56) and soft.min() >= 0 and soft.max() <= 1
    torch.testing.assert_close(s.pred_sem_seg.data, (soft > 0.5).long())
    multi = tiny_model(max_objects=3, multi_mode='components')
    with torch.no_grad():
        m = multi.predict(**image_batch(multi, [(48, 56)]))[0]
        single = tiny_model().predict(**image_batch(multi, [(48, 56)]))[0]
    k = len(m.pred_instances)
    assert 1 <= k <= 3 and m.pred_instances.masks.shape[0] == k
    torch.testing.assert_close(m.pred_instances.bboxes[:1],
                               single.pred_instances.bboxes)


def test_bad_inputs_give_clear_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match='smaller than one 8x8 patch'):
        model.predict(**image_batch(model, [(6, 30)]))
    data = image_batch(model, [(16, 24)])
    data['inputs'][0, 0, 3, 3] = float('nan')
    with pytest.raises(ValueError, match='NaN'):
        model.predict(**data)
    with pytest.raises(NotImplementedError, match='training-free'):
        model.loss(None, None)


# -------------------------------------------------------------------- video
def test_video_model_and_errors():
    torch.manual_seed(0)
    model = MODELS.build(dict(type='TokenCutVideo', backbone=TINY_VIT,
                              edges_per_token=20)).eval()
    model.init_weights()
    clip = torch.randint(0, 255, (3, 3, 32, 40), dtype=torch.uint8)
    clip[:, :, 8:24, 8:16] = 255
    s = SegDataSample()
    s.set_metainfo(dict(ori_shape=(64, 80)))
    with torch.no_grad():
        out = model.predict([clip], [s])[0]
    assert out.pred_sem_seg.data.shape == (3, 64, 80)
    assert out.seg_logits.data.shape == (3, 64, 80)
    flow = torch.randint(0, 255, clip.shape, dtype=torch.uint8)
    with torch.no_grad():
        out = model.predict([dict(frames=clip, flow=flow)])[0]
    assert out.pred_sem_seg.data.shape == (3, 32, 40)
    with pytest.raises(ValueError, match='T >= 1'):
        model.predict([clip[:0]])


# ---------------------------------------------------------- data and metrics
VOC_XML = """<annotation><filename>{name}.jpg</filename>
<size><width>100</width><height>80</height><depth>3</depth></size>
{objects}</annotation>"""
VOC_OBJ = """<object><name>{cls}</name><truncated>{t}</truncated>
<difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>
<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"""


def write_voc(root):
    import os
    for d in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
        os.makedirs(osp.join(root, d), exist_ok=True)
    objs = {
        'a': [('dog', 0, 0, (1, 1, 100, 80)), ('cat', 1, 0, (10, 20, 30, 40))],
        'b': [('car', 1, 0, (5, 5, 50, 50)), ('car', 0, 1, (2, 3, 4, 5))],
    }
    for name, ob in objs.items():
        xml = VOC_XML.format(name=name, objects=''.join(
            VOC_OBJ.format(cls=c, t=t, d=d, b=b) for c, t, d, b in ob))
        with open(osp.join(root, 'Annotations', name + '.xml'), 'w') as f:
            f.write(xml)
    with open(osp.join(root, 'ImageSets/Main/trainval.txt'), 'w') as f:
        f.write('a\nb\n')


def test_voc_boxes_and_no_hard(tmp_path):
    root = str(tmp_path)
    write_voc(root)
    ann = od.parse_voc_xml(osp.join(root, 'Annotations', 'a.xml'))
    np.testing.assert_array_equal(ann['boxes'],
                                  [[0, 0, 100, 80], [9, 19, 30, 40]])
    ds = DATASETS.build(dict(type='VOCDiscoveryDataset', data_root=root,
                             pipeline=[]))
    assert len(ds) == 2 and len(ds.get_data_info(1)['gt_bboxes']) == 2
    ds = DATASETS.build(dict(type='VOCDiscoveryDataset', data_root=root,
                             no_hard=True, pipeline=[]))
    assert len(ds) == 1  # 'b' has only hard objects
    np.testing.assert_array_equal(ds.get_data_info(0)['gt_bboxes'],
                                  [[0, 0, 100, 80]])
    with open(osp.join(root, 'Annotations', 'a.xml'), 'w') as f:
        f.write('<annotation><object>')
    with pytest.raises(ValueError, match='a.xml'):
        od.parse_voc_xml(osp.join(root, 'Annotations', 'a.xml'))


def test_coco20k_drops_crowd_and_rounds(tmp_path):
    import json
    coco = dict(
        images=[dict(id=9, file_name='COCO_train2014_000000000009.jpg',
                     height=50, width=60),
                dict(id=10, file_name='x.jpg', height=5, width=5)],
        annotations=[
            dict(id=1, image_id=9, category_id=1, bbox=[1.4, 2.6, 10, 5],
                 iscrowd=0, area=50),
            dict(id=2, image_id=9, category_id=1, bbox=[0, 0, 60, 50],
                 iscrowd=1, area=3000)
        ],
        categories=[dict(id=1, name='thing')])
    with open(tmp_path / 'inst.json', 'w') as f:
        json.dump(coco, f)
    with open(tmp_path / 'list.txt', 'w') as f:
        f.write('COCO_train2014_000000000009.jpg\n')
    ds = DATASETS.build(dict(type='COCO20kDataset', data_root=str(tmp_path),
                             ann_file='inst.json', file_list='list.txt',
                             data_prefix=dict(img_path='imgs'), pipeline=[]))
    assert len(ds) == 1
    np.testing.assert_array_equal(ds.get_data_info(0)['gt_bboxes'],
                                  [[1, 3, 11, 8]])


def test_boxes_from_mask_modes():
    m = np.zeros((10, 12), np.uint8)
    m[1:3, 1:4] = 1
    m[6:9, 8:11] = 2
    np.testing.assert_array_equal(od.boxes_from_mask(m), [[1, 1, 11, 9]])
    np.testing.assert_array_equal(
        od.boxes_from_mask(m, 'instances'), [[1, 1, 4, 3], [8, 6, 11, 9]])
    np.testing.assert_array_equal(
        od.boxes_from_mask(m > 0, 'components'),
        [[1, 1, 4, 3], [8, 6, 11, 9]])
    assert od.boxes_from_mask(np.zeros((3, 3))).shape == (0, 4)


def test_real_datasets():
    pf = shared_path('pennfudanped')
    boxes = od.parse_pennfudan_txt(osp.join(pf, 'Annotation',
                                            'FudanPed00001.txt'))
    # "(160, 182) - (302, 431)" and "(420, 171) - (535, 486)", 1-based
    np.testing.assert_array_equal(boxes, [[159, 181, 302, 431],
                                          [419, 170, 535, 486]])
    ds = DATASETS.build(dict(type='PennFudanDiscoveryDataset', data_root=pf,
                             pipeline=[]))
    assert len(ds) == 50
    assert sum(len(ds.get_data_info(i)['gt_bboxes'])
               for i in range(len(ds))) == 139
    sod = shared_path('sod_bsds')
    ds = DATASETS.build(dict(type='MaskBoxDataset', data_root=sod,
                             indices=2, pipeline=[]))
    from PIL import Image
    info = ds.get_data_info(0)
    m = np.asarray(Image.open(info['seg_map_path'])) > 0
    ys, xs = np.nonzero(m)
    np.testing.assert_array_equal(
        info['gt_bboxes'], [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]])


def test_video_dataset_and_pipeline():
    root = shared_path('davis2016_video')
    pipeline = [dict(type='LoadVideoFrames', short_side=320,
                     size_divisor=14),
                dict(type='PackVideoInputs')]
    # every sequence folder, sorted; then one chosen by name
    every = DATASETS.build(dict(type='VideoFramesDataset', data_root=root,
                                frame_limit=3, pipeline=pipeline))
    names = [every.get_data_info(i)['seq_name'] for i in range(len(every))]
    assert names == sorted(names) and 'blackswan' in names
    ds = DATASETS.build(dict(
        type='VideoFramesDataset', data_root=root, frame_limit=3,
        sequences=['blackswan'], pipeline=pipeline))
    assert len(ds) == 1
    item = ds[0]
    # 854x480 -> short side 320: 569.3x320 -> multiples of 14: 574x322
    assert item['inputs'].shape == (3, 3, 322, 574)
    assert item['data_samples'].gt_sem_seg.data.shape == (3, 480, 854)
    assert item['data_samples'].seq_name == 'blackswan'
    with pytest.raises(FileNotFoundError, match='no sequence'):
        DATASETS.build(dict(type='VideoFramesDataset', data_root=root,
                            img_dir='{seq}/nothing', pipeline=[]))


def test_resize_to_multiple():
    t = TRANSFORMS.build(dict(type='ResizeToMultiple', size_divisor=14))
    r = t.transform(dict(img=np.zeros((321, 481, 3), np.uint8)))
    assert r['img'].shape == (322, 476, 3) and r['img_shape'] == (322, 476)
    with pytest.raises(ValueError, match='smaller than one'):
        t.transform(dict(img=np.zeros((5, 100, 3), np.uint8)))


def _sample(pred_boxes, gt_boxes, shape=(100, 200)):
    s = SegDataSample()
    s.set_metainfo(dict(gt_bboxes=np.asarray(gt_boxes, np.float32),
                        ori_shape=shape, img_path='x.jpg'))
    s.pred_instances = InstanceData(bboxes=torch.tensor(pred_boxes).float())
    return s


def test_corloc_metric_hand_case():
    metric = METRICS.build(dict(type='CorLocMetric'))
    samples = [
        _sample([[0, 0, 10, 10]], [[0, 0, 10, 10], [50, 50, 60, 60]]),
        _sample([[0, 0, 10, 10], [50, 25, 150, 75]], [[50, 25, 150, 75]]),
        _sample([[0, 0, 10, 10]], np.zeros((0, 4))),
    ]
    metric.process({}, [s.to_dict() for s in samples])
    res = metric.compute_metrics(metric.results)
    assert res['corloc'] == pytest.approx(1 / 3)
    assert res['corloc_any'] == pytest.approx(2 / 3)
    # the centred box of a 100x200 image is [50, 25, 150, 75]: image 2 only
    assert res['corloc_centered'] == pytest.approx(1 / 3)


def test_video_iou_metric_hand_case():
    metric = METRICS.build(dict(type='VideoIoUMetric',
                                centered_baseline=False))
    pred = torch.zeros(2, 4, 4, dtype=torch.uint8)
    gt = torch.zeros(2, 4, 4, dtype=torch.uint8)
    pred[0, :2] = 1
    gt[0, :1] = 1  # IoU 0.5; frame 1: both empty -> 1.0
    a = SegDataSample(pred_sem_seg=PixelData(data=pred),
                      gt_sem_seg=PixelData(data=gt))
    a.set_metainfo(dict(seq_name='a'))
    b = SegDataSample(pred_sem_seg=PixelData(data=pred[:1] * 0),
                      gt_sem_seg=PixelData(data=gt[:1]))
    b.set_metainfo(dict(seq_name='b'))  # IoU 0
    metric.process({}, [a.to_dict(), b.to_dict()])
    # mmengine keeps only len(dataset) entries: one per clip must suffice
    res = metric.evaluate(2)
    assert res['iou'] == pytest.approx((0.75 + 0.0) / 2)
    assert res['frame_iou'] == pytest.approx(1.5 / 3)
    assert res['num_sequences'] == 2


@pytest.mark.slow
def test_real_weights_through_the_runner(tmp_path):
    ckpt = osp.join(REPO_ROOT, 'checkpoints', 'imgfocus_vits14.pth')
    if not osp.isfile(ckpt):
        pytest.fail('checkpoints/imgfocus_vits14.pth missing (run '
                    '`make weights`)')
    root = shared_path('sod_bsds')
    import sys
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
    test_tool = importlib.import_module('test')
    cfg = osp.join(REPO_ROOT, 'configs', 'tokencut',
                   'tokencut_imgfocus-vits14_sod-bsds.py')
    import os
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)
    try:
        metrics = test_tool.main([
            cfg, ckpt, '--work-dir', str(tmp_path), '--cfg-options',
            'test_dataloader.dataset.indices=3',
            f'test_dataloader.dataset.data_root={root}'
        ])
    finally:
        os.chdir(cwd)
    assert 0 <= metrics['corloc'] <= 1 and 'saliency/iou' in metrics


def test_every_tokencut_config_builds():
    import glob
    from mmengine.config import Config
    seen = set()
    for path in sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'tokencut',
                                          '*.py'))):
        cfg = Config.fromfile(path)
        assert cfg.model.type in ('TokenCut', 'TokenCutVideo'), path
        assert cfg.test_evaluator, path
        key = repr(cfg.model.backbone) + cfg.model.type
        if key in seen:
            continue
        seen.add(key)
        model = MODELS.build(cfg.model)
        assert model.patch_size == cfg.model.backbone.patch_size
    assert len(seen) >= 6
