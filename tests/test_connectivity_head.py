"""ConnNet head, losses, segmentor (instances), metric, dataset and the
frozen-backbone cache hook, on tiny models."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from vtseg.functional import (bce_on_probs, bilateral_voting,
                              connectivity_loss_terms,
                              instance_to_connectivity, soft_dice_loss)
from vtseg.registry import DATASETS, HOOKS, METRICS, MODELS


def tiny_cfg(head='ConnNetHead', segmentor='EncoderDecoder', frozen=-1,
             **head_kw):
    head_cfg = dict(
        type=head, in_channels=[32, 32, 32], in_index=[0, 1, 2],
        cascade_channels=(16, 12, 8), channels=8, num_classes=2,
        out_channels=1, threshold=0.5, dropout_ratio=0.0)
    head_cfg.update(head_kw)
    return dict(
        type=segmentor,
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0, 0, 0],
                               std=[1, 1, 1], size_divisor=8,
                               test_cfg=dict(size_divisor=8)),
        backbone=dict(type='ViT', img_size=32, patch_size=8, embed_dims=32,
                      depth=3, num_heads=2, out_indices=(0, 1, 2),
                      frozen_blocks=frozen),
        decode_head=head_cfg,
        test_cfg=ConfigDict(mode='whole'))


def build(cfg):
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def sample(h, w, label=None, ori=None):
    s = SegDataSample()
    if label is not None:
        s.gt_sem_seg = PixelData(data=torch.as_tensor(label)[None].long())
    ori = ori or (h, w)
    s.set_metainfo(dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=ori,
                        padding_size=[0, 0, 0, 0]))
    return s


def square_label(h, w):
    lab = torch.zeros(h, w, dtype=torch.long)
    lab[h // 4:3 * h // 4, w // 4:3 * w // 4] = 1
    return lab


# ------------------------------------------------------------------ head
def test_head_output_channels_and_loss_terms():
    model = build(tiny_cfg())
    head = model.decode_head
    assert head.conv_seg.out_channels == 8
    x = torch.randn(2, 3, 32, 40)
    feats = model.extract_feat(x)
    out = head(feats)
    assert out.shape == (2, 8, 16, 20)  # stride 8 / 2**2
    samples = [sample(32, 40, square_label(32, 40)) for _ in range(2)]
    losses = head.loss_by_feat(out, samples)
    assert set(losses) == {f'loss_conn_{k}'
                           for k in ('conn', 'vote', 'bce', 'dice', 'edge')}
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total)
    assert head.conv_seg.weight.grad is not None
    # the head's terms are the plain functions on upsampled logits (bicon
    # weights 0.8 / 0.2 / 1 / 1 / 1)
    up = torch.nn.functional.interpolate(out.detach(), (32, 40),
                                         mode='bilinear')
    ref = connectivity_loss_terms(up, torch.stack(
        [square_label(32, 40)] * 2)[:, None], 'bicon')
    w = dict(conn=0.8, vote=0.2, bce=1, dice=1, edge=1)
    for k in ref:
        assert torch.allclose(losses[f'loss_conn_{k}'].detach(),
                              w[k] * ref[k], rtol=1e-5, atol=1e-7)


def test_head_channels_for_dilations_and_classes():
    head = build(tiny_cfg(dilations=(1, 2),
                          loss_decode=dict(type='ConnectivityLoss',
                                           dilations=(1, 2)))).decode_head
    assert head.conv_seg.out_channels == 16
    head = build(tiny_cfg(num_classes=3, out_channels=3,
                          loss_decode=dict(type='ConnectivityLoss',
                                           variant='dconn_multiclass'))
                 ).decode_head
    assert head.conv_seg.out_channels == 24 and head.decode == 'multiclass'


def test_head_config_errors():
    with pytest.raises(ValueError, match='decode'):
        build(tiny_cfg(decode='multiclass'))
    with pytest.raises(ValueError, match='dilations'):
        build(tiny_cfg(dilations=(1, 2)))
    with pytest.raises(ValueError, match='cascade_channels'):
        build(tiny_cfg(cascade_channels=(16, 8)))


def test_encoder_decoder_dropin_soft_decode():
    """Stock EncoderDecoder: seg_logits holds the voted map F (mmseg's
    sigmoid undoes the head's logit) and pred_sem_seg = F > 0.5."""
    model = build(tiny_cfg()).eval()
    x = torch.randn(2, 3, 32, 40)
    samples = [sample(32, 40) for _ in range(2)]
    with torch.no_grad():
        res = model.predict(x, samples)
        conn = model.decode_head(model.extract_feat(x))
    up = torch.nn.functional.interpolate(conn, (32, 40), mode='bilinear')
    fmap = bilateral_voting(up.sigmoid())
    for i, r in enumerate(res):
        got = r.seg_logits.data
        assert got.shape == (1, 32, 40)
        assert torch.allclose(got, fmap[i].clamp(1e-6, 1 - 1e-6),
                              atol=1e-5)
        assert torch.equal(r.pred_sem_seg.data.bool(), got > 0.5)


def test_multiclass_predict_returns_voted_logits():
    model = build(tiny_cfg(num_classes=3, out_channels=3,
                           loss_decode=dict(type='ConnectivityLoss',
                                            variant='dconn_multiclass'))
                  ).eval()
    x = torch.randn(1, 3, 24, 24)
    with torch.no_grad():
        res = model.predict(x, [sample(24, 24)])
        conn = model.decode_head(model.extract_feat(x))
    up = torch.nn.functional.interpolate(conn, (24, 24), mode='bilinear')
    assert torch.allclose(res[0].seg_logits.data, bilateral_voting(up)[0],
                          atol=1e-6)
    lab = torch.randint(0, 3, (24, 24))
    model.train()
    losses = model.loss(x, [sample(24, 24, lab)])
    assert 'decode.loss_conn_ce' in losses


def test_tiny_images_defined():
    """Images smaller than the head's stride (and 1x1) give a defined
    result: the map is upsampled to the image, links leaving the image are
    0, so a 1x1 image is always background."""
    model = build(tiny_cfg()).eval()
    with torch.no_grad():
        res = model.predict(torch.randn(1, 3, 5, 3), [sample(5, 3)])
    assert res[0].seg_logits.data.shape == (1, 5, 3)
    assert torch.isfinite(res[0].seg_logits.data).all()
    head = model.decode_head
    with torch.no_grad():
        one = head.predict_by_feat(torch.randn(1, 8, 4, 4) + 10,
                                   [dict(img_shape=(1, 1))])
    assert one.shape == (1, 1, 1, 1) and one.sigmoid().item() < 1e-5


def test_ignore_label_in_head_loss():
    model = build(tiny_cfg())
    x = torch.randn(1, 3, 16, 16)
    lab = square_label(16, 16)
    lab[0, :] = 255
    losses = model.loss(x, [sample(16, 16, lab)])
    assert all(torch.isfinite(v) for v in losses.values())


# ----------------------------------------------------------- control head
def test_binary_control_head_and_loss():
    model = build(tiny_cfg(head='CascadeRelationHead',
                           loss_decode=dict(type='BinaryMaskLoss')))
    head = model.decode_head
    assert head.conv_seg.out_channels == 1
    x = torch.randn(2, 3, 32, 32)
    lab = square_label(32, 32)
    losses = model.loss(x, [sample(32, 32, lab)] * 2)
    assert set(losses) == {'decode.loss_mask_bce', 'decode.loss_mask_dice'}
    conn_head = build(tiny_cfg()).decode_head
    n_bin = sum(p.numel() for p in head.parameters())
    n_conn = sum(p.numel() for p in conn_head.parameters())
    assert n_conn - n_bin == 7 * (8 + 1)  # only conv_seg differs


def test_binary_mask_loss_values():
    loss = MODELS.build(dict(type='BinaryMaskLoss'))
    logits = torch.randn(2, 1, 5, 6)
    lab = (torch.rand(2, 5, 6) > 0.5).long()
    out = loss(logits, lab)
    p = logits.sigmoid()
    assert torch.allclose(out['loss_mask_bce'],
                          bce_on_probs(p, lab[:, None].float()))
    assert torch.allclose(out['loss_mask_dice'],
                          soft_dice_loss(p, lab[:, None].float(), 1e-3))
    with pytest.raises(ValueError, match='labels'):
        loss(logits, lab * 2)


def test_connectivity_loss_module_instance_aware_and_weights():
    ids = torch.zeros(1, 8, 10, dtype=torch.long)
    ids[0, 1:7, 1:5] = 1
    ids[0, 1:7, 5:9] = 2
    logits = torch.randn(1, 8, 8, 10)
    mod = MODELS.build(dict(type='ConnectivityLoss', instance_aware=True,
                            weights=dict(edge=2.0)))
    out = mod(logits, ids)
    ref = connectivity_loss_terms(logits, (ids > 0).long()[:, None], 'bicon',
                                  conn_target=instance_to_connectivity(ids))
    assert torch.allclose(out['loss_conn_edge'], 2.0 * ref['edge'])
    assert torch.allclose(out['loss_conn_conn'], 0.8 * ref['conn'])
    plain = connectivity_loss_terms(logits, (ids > 0).long()[:, None])
    assert not torch.allclose(ref['conn'], plain['conn'])
    with pytest.raises(ValueError, match='weight keys'):
        MODELS.build(dict(type='ConnectivityLoss', weights=dict(foo=1)))
    with pytest.raises(ValueError, match='variant'):
        MODELS.build(dict(type='ConnectivityLoss', variant='x'))


# ------------------------------------------------------ instances/segmentor
def test_instances_from_connectivity():
    from vtseg.models.segmentors.connnet import instances_from_connectivity
    ids = torch.zeros(12, 14, dtype=torch.long)
    ids[1:6, 1:6] = 1
    ids[1:6, 6:12] = 2  # touches 1
    ids[8:11, 2:13] = 3
    prob = instance_to_connectivity(ids[None])[0] * 0.98 + 0.01
    prob[:, 8:11, 2:13] *= 0.8  # lower score for instance 3
    inst = instances_from_connectivity(prob)
    assert len(inst) == 3
    assert inst.scores[0] >= inst.scores[1] > inst.scores[2]
    found = {tuple(b.tolist()) for b in inst.bboxes}
    assert found == {(1., 1., 6., 6.), (6., 1., 12., 6.), (2., 8., 13., 11.)}
    for m, b in zip(inst.masks, inst.bboxes):
        x1, y1, x2, y2 = b.long().tolist()
        assert m[y1:y2, x1:x2].sum() == m.sum()
    merged = instances_from_connectivity(prob, split='mask_components')
    assert len(merged) == 2
    assert len(instances_from_connectivity(prob, max_instances=1)) == 1


def test_connnet_segmentor_instances_at_original_size():
    model = build(tiny_cfg(segmentor='ConnNetSegmentor')).eval()
    model.test_cfg = ConfigDict(mode='whole', instances=True)
    x = torch.randn(1, 3, 32, 40)
    s = sample(32, 40, ori=(64, 80))
    s.set_metainfo(dict(img_padding_size=[0, 0, 0, 0]))
    with torch.no_grad():
        res = model.predict(x, [s])
    inst = res[0].pred_instances
    assert res[0].seg_logits.data.shape == (1, 64, 80)
    assert inst.masks.shape[1:] == (64, 80)
    assert set(inst.keys()) == {'masks', 'bboxes', 'scores', 'labels'}
    # every instance pixel is foreground of the semantic map
    if len(inst):
        fg = res[0].pred_sem_seg.data[0].bool()
        assert (inst.masks.any(0) <= fg | True).all()
    model.test_cfg = ConfigDict(mode='slide', instances=True)
    with pytest.raises(ValueError, match='whole'):
        model.predict(x, [s])


# ------------------------------------------------------------------ metric
def _write_ids(tmp_path, name, ids):
    path = osp.join(tmp_path, name)
    Image.fromarray(ids.astype(np.uint8)).save(path)
    return path


def _metric_sample(path, masks, scores):
    return dict(seg_map_path=path, img_path=path,
                pred_instances=dict(masks=torch.as_tensor(masks),
                                    scores=torch.as_tensor(scores)))


def test_instance_ap_metric_hand_values(tmp_path):
    ids = np.zeros((20, 30), np.uint8)
    ids[2:10, 2:10] = 1
    ids[12:18, 5:25] = 2
    path = _write_ids(str(tmp_path), 'a.png', ids)
    gt = np.stack([ids == 1, ids == 2])
    metric = METRICS.build(dict(type='InstanceMaskAPMetric'))
    metric.process({}, [_metric_sample(path, gt, [0.9, 0.8])])
    res = metric.compute_metrics(metric.results)
    assert res['segm_mAP'] == pytest.approx(1.0)
    assert res['bbox_mAP'] == pytest.approx(1.0)
    # one right (high score), one wrong (IoU < 0.5): precision 1 up to
    # recall 0.5, nothing after: 51 of COCO's 101 recall points
    wrong = np.zeros_like(gt[0])
    wrong[0:2, 25:30] = True
    metric = METRICS.build(dict(type='InstanceMaskAPMetric',
                                iou_types=('segm', ),
                                outfile_prefix=str(tmp_path / 'out')))
    metric.process({}, [_metric_sample(path, np.stack([gt[0], wrong]),
                                       [0.9, 0.8])])
    res = metric.compute_metrics(metric.results)
    assert res['segm_mAP'] == pytest.approx(51 / 101)
    assert osp.isfile(tmp_path / 'out.gt.json')
    assert osp.isfile(tmp_path / 'out.pred.json')
    # no predictions: AP 0
    metric = METRICS.build(dict(type='InstanceMaskAPMetric'))
    metric.process({}, [_metric_sample(path, np.zeros((0, 20, 30), bool),
                                       np.zeros(0))])
    assert metric.compute_metrics(metric.results)['segm_mAP'] == 0.0
    with pytest.raises(ValueError, match='size'):
        metric.process({}, [_metric_sample(path, gt[:, :10], [1, 1])])


# ----------------------------------------------------------------- dataset
def test_pennfudan_split(shared_data):
    root = shared_data('pennfudanped')
    kw = dict(data_root=root, pipeline=[], lazy_init=False)
    train = DATASETS.build(dict(type='PennFudanDataset', split='train', **kw))
    val = DATASETS.build(dict(type='PennFudanDataset', split='val', **kw))
    full = DATASETS.build(dict(type='PennFudanDataset', **kw))
    names = lambda d: [osp.basename(d.get_data_info(i)['img_path'])  # noqa
                       for i in range(len(d))]
    assert (len(train), len(val), len(full)) == (34, 16, 50)
    assert sorted(names(train) + names(val)) == names(full)
    assert names(val)[:2] == ['FudanPed00003.png', 'FudanPed00006.png']
    assert any(n.startswith('PennPed') for n in names(val))
    info = val.get_data_info(0)
    assert info['seg_map_path'].endswith('FudanPed00003_mask.png')
    with pytest.raises(ValueError, match='split'):
        DATASETS.build(dict(type='PennFudanDataset', split='test', **kw))


# -------------------------------------------------------------------- hook
class _Runner:

    def __init__(self, model):
        self.model = model


def test_frozen_backbone_cache_hook():
    model = build(tiny_cfg(frozen=3))
    model.train()
    hook = HOOKS.build(dict(type='FrozenBackboneCacheHook'))
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        ref = model.backbone(x)
    hook.before_train(_Runner(model))
    out1 = model.backbone(x[:2])
    out2 = model.backbone(torch.stack([x[2], x[0], x[1]]))
    assert (hook.hits, hook.misses) == (2, 3)
    for lvl in range(3):
        assert torch.allclose(out1[lvl], ref[lvl][:2], atol=1e-6)
        assert torch.allclose(out2[lvl], ref[lvl][[2, 0, 1]], atol=1e-6)
    model.eval()  # validation: not cached
    model.backbone(x)
    assert hook.hits == 2
    hook.after_train(_Runner(model))
    # a trainable backbone is refused
    with pytest.raises(ValueError, match='trainable'):
        HOOKS.build(dict(type='FrozenBackboneCacheHook')).before_train(
            _Runner(build(tiny_cfg())))


def test_frozen_backbone_cache_hook_on_frozen_prefix():
    """Only the frozen blocks are memoised (ViT.frozen_prefix, returned as
    a tensor); the trained last block still gets its gradients."""
    cfg = tiny_cfg(frozen=2)
    cfg['backbone']['out_indices'] = (2, )
    cfg['decode_head'].update(in_channels=[32], in_index=[0],
                              cascade_channels=(8, ))
    model = build(cfg)
    model.train()
    x = torch.randn(3, 3, 16, 16)
    ref = model.backbone(x)[0]
    hook = HOOKS.build(dict(
        type='FrozenBackboneCacheHook', method='backbone.frozen_prefix',
        depends_on=r'backbone\.(patch_embed|cls_token|pos_embed|pos_drop|'
        r'blocks\.[01]\.)'))
    hook.before_train(_Runner(model))
    assert isinstance(model.backbone.frozen_prefix(x[:1]), torch.Tensor)
    out = model.backbone(x)[0]
    out = model.backbone(x)[0]
    assert (hook.hits, hook.misses) == (3 + 1, 3)
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    assert model.backbone.blocks[2].attn.qkv.weight.grad is not None
    assert model.backbone.blocks[1].attn.qkv.weight.grad is None
    hook.after_train(_Runner(model))
    # a memoised call that uses a trained block is refused
    with pytest.raises(ValueError, match='blocks.2'):
        HOOKS.build(dict(
            type='FrozenBackboneCacheHook', method='backbone.frozen_prefix',
            depends_on=r'backbone\.blocks\.[0-2]\.')).before_train(
                _Runner(build(cfg)))


def test_connectivity_head_wraps_mmseg_head():
    """ConnectivityHead turns mmseg's FCNHead into a connectivity head: 8
    link channels, the connectivity loss, voting at prediction."""
    cfg = tiny_cfg()
    cfg['decode_head'] = dict(
        type='ConnectivityHead',
        head=dict(type='FCNHead', in_channels=32, in_index=2, channels=16,
                  num_convs=1, concat_input=False, num_classes=2,
                  out_channels=1, threshold=0.5, dropout_ratio=0.0))
    model = build(cfg)
    head = model.decode_head
    assert head.head.conv_seg.out_channels == 8
    x = torch.randn(2, 3, 24, 32)
    losses = model.loss(x, [sample(24, 32, square_label(24, 32))] * 2)
    assert 'decode.loss_conn_edge' in losses
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        res = model.predict(x, [sample(24, 32)] * 2)
        conn = head(model.extract_feat(x))
    assert conn.shape == (2, 8, 3, 4)
    up = torch.nn.functional.interpolate(conn, (24, 32), mode='bilinear')
    fmap = bilateral_voting(up.sigmoid())
    assert torch.allclose(res[1].seg_logits.data,
                          fmap[1].clamp(1e-6, 1 - 1e-6), atol=1e-5)
    with pytest.raises(ValueError, match='dilations'):
        MODELS.build(dict(cfg['decode_head'], dilations=(1, 2)))


@pytest.mark.parametrize('name', [
    'connnet_vits14-frozen_sod-bsds-224.py',
    'connnet_vits14-frozen_sod-bsds-224_faithful.py',
    'binary_vits14-frozen_sod-bsds-224.py',
    'connnet_vits14-frozen_pennfudan-inst-336.py'
])
def test_connnet_configs_build(name):
    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    cfg = Config.fromfile(osp.join(root, 'configs', 'connnet', name))
    head = MODELS.build(cfg.model.decode_head)  # the ViT-S is not built
    n_conn = head.conv_seg.out_channels
    assert n_conn == (1 if name.startswith('binary') else 8)
    bb = cfg.model.backbone
    assert bb.frozen_blocks == bb.depth  # fully frozen: the cache hook is
    assert len(bb.out_indices) == len(head.in_index)  # exact
    assert bb.init_cfg.prefix == 'backbone.'
