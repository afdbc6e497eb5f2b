"""Plain-ViT detectors on mmdet (docs/detection.md): SimpleFPN, Mask R-CNN
and RetinaNet on a tiny windowed ViT (non-divisible sizes, mixed-size
batches), Expedit inside the detector, and the full-mmcv variant."""
import copy

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from vtseg.compat import has_compiled_mmcv_ops
from vtseg.models.necks import SimpleFPN
from vtseg.models.reducers import expedit_token_stages

from conftest import REPO_ROOT

PF_CONFIG = (f'{REPO_ROOT}/configs/vitdet/'
             'mask-rcnn_vits14-imgfocus-frozen_simplefpn_pennfudan-448.py')
RETINA_CONFIG = (f'{REPO_ROOT}/configs/vitdet/'
                 'retinanet_vit-b16_simplefpn_lsj-1024_coco.py')

TINY_VIT = dict(
    _scope_='vtseg', type='ViT', img_size=64, patch_size=16, embed_dims=32,
    depth=4, num_heads=2, mlp_ratio=2, with_cls_token=False,
    pos_embed_with_cls=False, window_size=3, global_blocks=(1, 3),
    use_rel_pos=True, final_norm=False, out_indices=(3, ), init_cfg=None)


def tiny_cfg(config=PF_CONFIG, num_classes=2, **backbone):
    """The config's detector with a tiny windowed ViT and 32-ch heads."""
    cfg = Config.fromfile(config)
    m = copy.deepcopy(cfg.model)
    m.backbone = dict(TINY_VIT, **backbone)
    m.data_preprocessor.pad_size_divisor = 1  # keep odd sizes odd
    ch = 32
    m.neck.update(in_channels=32, out_channels=ch,
                  in_stride=m.backbone['patch_size'], base_stride=16)
    if m.type == 'MaskRCNN':
        m.rpn_head.update(in_channels=ch, feat_channels=ch)
        m.roi_head.bbox_roi_extractor.out_channels = ch
        m.roi_head.mask_roi_extractor.out_channels = ch
        m.roi_head.bbox_head.update(in_channels=ch, fc_out_channels=32,
                                    num_classes=num_classes)
        m.roi_head.mask_head.update(in_channels=ch, conv_out_channels=ch,
                                    num_classes=num_classes)
    else:
        m.bbox_head.update(in_channels=ch, feat_channels=ch,
                           stacked_convs=1, num_classes=num_classes)
    return m


def build(model_cfg):
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = ROOT_MODELS.build(copy.deepcopy(model_cfg))
        model.init_weights()
    return model


def batch(sizes, seed=0, with_masks=True):
    """Images of the given (H, W) sizes with two boxes (+ masks) each."""
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for h, w in sizes:
        inputs.append((torch.rand(3, h, w, generator=g) * 255).byte())
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                        scale_factor=(1., 1.)))
        boxes = torch.tensor([[4., 6., w * 0.6, h * 0.7],
                              [w * 0.4, h * 0.3, w - 3., h - 2.]])
        inst = InstanceData(bboxes=boxes, labels=torch.tensor([0, 1]))
        if with_masks:
            from mmdet.structures.mask import BitmapMasks
            m = torch.zeros(2, h, w, dtype=torch.uint8)
            for i, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
                m[i, y1:y2, x1:x2] = 1
            inst.masks = BitmapMasks(m.numpy(), h, w)
        s.gt_instances = inst
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def loss_and_predict(model, sizes):
    model.train()
    data = model.data_preprocessor(batch(sizes), True)
    losses = model(**data, mode='loss')
    total = sum(v.sum() for k, v in losses.items() if 'loss' in k
                for v in (v if isinstance(v, list) else [v]))
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.backbone.parameters()
             if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    model.eval()
    data = model.data_preprocessor(batch(sizes, seed=1), False)
    with torch.no_grad():
        return losses, model(**data, mode='predict')


def test_simple_fpn_levels_and_patch14_resampling():
    fpn = SimpleFPN(in_channels=24, out_channels=8, in_stride=16,
                    base_stride=16)
    outs = fpn((torch.randn(2, 24, 10, 7), ))
    assert [o.shape[-2:] for o in outs] == [(40, 28), (20, 14), (10, 7),
                                            (5, 3), (3, 2)]
    # patch 14 -> stride 16: a 448 px image gives 32 tokens -> 28 at /16
    fpn14 = SimpleFPN(in_channels=24, out_channels=8, in_stride=14,
                      base_stride=16, norm='GN', num_outs=4)
    outs = fpn14([torch.randn(1, 24, 32, 24)])
    assert [tuple(o.shape[-2:]) for o in outs] == [(112, 84), (56, 42),
                                                   (28, 21), (14, 10)]
    with pytest.raises(ValueError, match='scale factor 3'):
        SimpleFPN(in_channels=8, scale_factors=(3, ))


def test_mask_rcnn_windowed_vit_odd_sizes_and_mixed_batch():
    model = build(tiny_cfg())
    assert any(model.backbone.window_sizes)
    # 150x131: not a multiple of the patch (16) nor of the window (3x16);
    # a batch of two different sizes (padded to 150x170 by the
    # preprocessor, the ViT pads to patches and windows itself)
    losses, preds = loss_and_predict(model, [(150, 131), (97, 170)])
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox',
                'loss_mask'):
        assert key in losses
    assert len(preds) == 2
    for p, (h, w) in zip(preds, [(150, 131), (97, 170)]):
        inst = p.pred_instances
        assert inst.bboxes.shape[1] == 4
        assert inst.masks.shape[1:] == (h, w)


def test_retinanet_one_stage_head():
    model = build(tiny_cfg(RETINA_CONFIG))
    model.train()
    data = model.data_preprocessor(batch([(120, 90), (77, 131)],
                                         with_masks=False), True)
    losses = model(**data, mode='loss')
    assert set(losses) >= {'loss_cls', 'loss_bbox'}
    total = sum(sum(v) if isinstance(v, list) else v
                for v in losses.values())
    total.backward()
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(batch([(90, 77)]), False),
                      mode='predict')
    assert preds[0].pred_instances.bboxes.shape[1] == 4


def test_expedit_inside_detector_changes_features_not_shapes():
    cfg = tiny_cfg(window_size=0, global_blocks=())
    model = build(cfg).eval()
    data = model.data_preprocessor(batch([(128, 96)]), False)
    with torch.no_grad():
        plain = model.extract_feat(data['inputs'])
        model.backbone.set_token_stages(
            expedit_token_stages(1, 0.5, k=4, depth=4))  # mmdet scope
        reduced = model.extract_feat(data['inputs'])
        preds = model(**data, mode='predict')
    assert len(model.backbone.token_stages) == 2
    assert [f.shape for f in plain] == [f.shape for f in reduced]
    assert not torch.allclose(plain[0], reduced[0])
    assert preds[0].pred_instances.bboxes.shape[1] == 4
    model.backbone.set_token_stages([])
    with torch.no_grad():
        again = model.extract_feat(data['inputs'])
    assert torch.equal(plain[0], again[0])


@pytest.mark.skipif(not has_compiled_mmcv_ops(),
                    reason='full mmcv (compiled ops) is not installed')
def test_mask_rcnn_with_full_mmcv_ops():
    # the same detector with mmcv's compiled nms / RoIAlign
    losses, preds = loss_and_predict(build(tiny_cfg()), [(150, 131),
                                                         (97, 170)])
    assert 'loss_mask' in losses and len(preds) == 2


def test_mask_rcnn_with_pure_torch_ops_when_mmcv_lite():
    if has_compiled_mmcv_ops():
        pytest.skip('full mmcv installed: the compiled ops are used')
    import mmcv
    assert type(mmcv._ext).__name__ == '_PureTorchExt'
    losses, _ = loss_and_predict(build(tiny_cfg()), [(64, 80)])
    assert 'loss_mask' in losses


def test_tiny_detector_on_real_pennfudan_images():
    """Integration: PennFudanDetDataset -> mmdet pipeline -> tiny windowed
    ViT Mask R-CNN trained a few steps on 2 real images (the loss on that
    batch falls) -> CocoMetric box and mask AP on them."""
    from mmengine.evaluator import Evaluator
    from mmengine.optim import OptimWrapper

    from conftest import shared_path
    from vtseg.datasets import PennFudanDetDataset
    root = shared_path('pennfudanped')
    cfg = Config.fromfile(PF_CONFIG)
    small = (160, 160)
    train_pipe = [dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True,
                       with_mask=True),
                  dict(type='Resize', scale=small, keep_ratio=True),
                  dict(type='PackDetInputs')]
    test_pipe = copy.deepcopy(cfg.test_pipeline)
    test_pipe[1]['scale'] = small
    with DefaultScope.overwrite_default_scope('mmdet'):
        tr = PennFudanDetDataset(data_root=root, split='train',
                                 pipeline=train_pipe,
                                 indices=[0, 1])
        te = PennFudanDetDataset(data_root=root, split='train',
                                 pipeline=test_pipe, test_mode=True,
                                 indices=[0, 1])
        items = [tr[0], tr[1]]
        model = build(tiny_cfg(num_classes=1))
        model.train()
        opt = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
        data = dict(inputs=[i['inputs'] for i in items],
                    data_samples=[i['data_samples'] for i in items])
        torch.manual_seed(0)
        first = model.train_step(copy.deepcopy(data), opt)['loss'].item()
        for _ in range(5):
            last = model.train_step(copy.deepcopy(data), opt)['loss'].item()
        assert last < first
        model.eval()
        ev = Evaluator(dict(type='CocoMetric', metric=['bbox', 'segm']))
        ev.dataset_meta = te.metainfo
        for k in range(2):
            it = te[k]
            b = dict(inputs=[it['inputs']], data_samples=[it['data_samples']])
            with torch.no_grad():
                ev.process(model.test_step(b), b)
        res = ev.evaluate(2)
    assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(res)
    assert all(-1 <= v <= 1 for v in res.values())


def test_tool_hooks_resolve_under_mmdet_scope():
    """tools/train.py / test.py add vtseg hooks by the spelling the config's
    scope can build (docs/architecture.md, mmdet detectors)."""
    from mmengine.registry import HOOKS

    from vtseg.utils.config import (add_strict_load_hook,
                                    use_atomic_checkpoints)
    cfg = Config.fromfile(PF_CONFIG)
    add_strict_load_hook(cfg)
    assert use_atomic_checkpoints(cfg) == \
        'vtseg.engine.AtomicCheckpointHook'
    with DefaultScope.overwrite_default_scope('mmdet'):
        for h in [cfg.default_hooks.checkpoint] + list(cfg.custom_hooks):
            HOOKS.build(copy.deepcopy(h))
    seg = Config(dict(default_scope='vtseg'))
    assert use_atomic_checkpoints(seg) == 'AtomicCheckpointHook'


def test_mask_flip_rcnn_averages_the_mirrored_masks():
    """MaskFlipRCNN: boxes as MaskRCNN; masks from the mean of the mask
    probabilities on the image and (mirrored boxes, flipped back) on its
    mirror, each image mirrored inside its own region of the padded
    batch; mask_flip_test=False is exactly MaskRCNN."""
    from mmdet.structures.bbox import bbox2roi

    from vtseg.models.detectors import mirror_images
    cfg = tiny_cfg()
    plain = build(cfg)
    flip_cfg = copy.deepcopy(cfg)
    flip_cfg.type = 'vtseg.models.detectors.MaskFlipRCNN'
    model = build(flip_cfg)
    model.load_state_dict(plain.state_dict())
    model.test_cfg.rcnn.mask_thr_binary = plain.test_cfg.rcnn.mask_thr_binary
    plain.eval(), model.eval()
    sizes = [(70, 90), (64, 51)]
    data = plain.data_preprocessor(batch(sizes, seed=3), False)
    inputs, samples = data['inputs'], data['data_samples']
    # the mirror stays inside each image; the padding is untouched
    mirrored = mirror_images(inputs, sizes)
    assert torch.equal(mirrored[1, :, :64, :51],
                       inputs[1, :, :64, :51].flip(-1))
    assert torch.equal(mirrored[1, :, :, 51:], inputs[1, :, :, 51:])
    assert torch.equal(mirror_images(mirrored, sizes), inputs)

    captured = {}
    head = model.roi_head.mask_head
    orig = head.predict_by_feat

    def capture(mask_preds, **kw):
        captured['probs'] = [p.clone() for p in mask_preds]
        captured['boxes'] = [r.bboxes.clone() for r in kw['results_list']]
        captured['activated'] = kw.get('activate_map', False)
        return orig(mask_preds=mask_preds, **kw)

    head.predict_by_feat = capture
    with torch.no_grad():
        ref = plain.predict(inputs, copy.deepcopy(samples))
        out = model.predict(inputs, copy.deepcopy(samples))
        for r, o in zip(ref, out):
            for k in ('bboxes', 'scores', 'labels'):
                torch.testing.assert_close(o.pred_instances[k],
                                           r.pred_instances[k])
        assert captured['activated']
        assert all(len(b) for b in captured['boxes'])
        # reference: the plain model's mask head on both images
        x = plain.extract_feat(inputs)
        xf = plain.extract_feat(mirror_images(inputs, sizes))
        for i, (boxes, (h, w)) in enumerate(zip(captured['boxes'], sizes)):
            if not len(boxes):
                continue
            rois = bbox2roi([boxes])
            fb = boxes.clone()
            fb[:, [0, 2]] = w - boxes[:, [2, 0]]
            p = plain.roi_head._mask_forward(
                tuple(f[i:i + 1] for f in x), rois)['mask_preds'].sigmoid()
            q = plain.roi_head._mask_forward(
                tuple(f[i:i + 1] for f in xf),
                bbox2roi([fb]))['mask_preds'].sigmoid()
            torch.testing.assert_close(captured['probs'][i],
                                       (p + q.flip(-1)) / 2)
        model.mask_flip_test = False
        off = model.predict(inputs, copy.deepcopy(samples))
    for r, o in zip(ref, off):
        assert torch.equal(o.pred_instances.masks, r.pred_instances.masks)
