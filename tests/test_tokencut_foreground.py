"""TokenCut's foreground-side rules on hand-made eigenvectors, the
DAVIS-folder dataset (clips and frames) on tiny folders, and the metrics'
per-sequence keys."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData, PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from vtseg.functional import ncut_foreground as nf
from vtseg.functional import normalized_cut as nc
from vtseg.registry import DATASETS, METRICS, MODELS

TINY_VIT = dict(type='ViT', img_size=32, patch_size=8, embed_dims=32,
                depth=2, num_heads=2, mlp_ratio=2, out_indices=-1)


def grid_vector(obj, obj_val, bg_val, h=6, w=6, extra=None):
    """(h * w,) eigenvector: ``obj_val`` on the (r0, r1, c0, c1) object
    rectangle, ``bg_val`` elsewhere, optional {(r, c): value} overrides."""
    x = np.full((h, w), float(bg_val))
    r0, r1, c0, c1 = obj
    x[r0:r1, c0:c1] = obj_val
    for (r, c), v in (extra or {}).items():
        x[r, c] = v
    return x.ravel()


def reference_orientation(x):
    """TokenCut's image rule, re-stated: split at the mean, the side of the
    largest |x| is the foreground, seed = argmax |x|."""
    part = x > x.sum() / len(x)
    seed = int(np.argmax(np.abs(x)))
    if not part[seed]:
        return ~part, -x, seed
    return part, x, seed


# ------------------------------------------------------------ image rules
def test_border_touching_background_with_the_largest_entry():
    # a centred 2x2 object (x = -1) and a background (x = +0.2) whose one
    # corner token carries the largest |x|: the reference takes the
    # background, the border and size rules the object
    x = grid_vector((2, 4, 2, 4), -1.0, 0.2, extra={(0, 0): 3.0})
    border = nf.border_tokens((6, 6))
    obj = grid_vector((2, 4, 2, 4), 1, 0).astype(bool)
    part, xr, seed, flipped = nf.orient_cut(x, 'reference', border)
    assert not flipped and seed == 0 and not part[obj].any()
    for rule in ('border', 'smaller'):
        part, xo, seed, flipped = nf.orient_cut(x, rule, border)
        np.testing.assert_array_equal(part, obj)
        assert flipped and np.array_equal(xo, -x)
        # seed: the foreground token of largest |x|; row-major first on ties
        assert seed == 2 * 6 + 2 and part[seed]


def test_centred_object_all_rules_agree():
    x = grid_vector((2, 4, 1, 4), 1.0, -0.3)
    border = nf.border_tokens((6, 6))
    obj = x > 0
    for rule in nf.IMAGE_FOREGROUND_RULES:
        part, _, seed, flipped = nf.orient_cut(x, rule, border)
        np.testing.assert_array_equal(part, obj)
        assert not flipped and seed == 2 * 6 + 1


def test_large_object_holding_most_of_the_border_defeats_every_rule():
    # the object fills the bottom 4 of 6 rows (12 of the 20 border tokens);
    # the background is the top 2 rows (8 border tokens) and holds the
    # largest |x|: every rule takes the background (the documented failure
    # case: a close-up object larger than the background)
    x = grid_vector((2, 6, 0, 6), 1.0, -2.0)
    border = nf.border_tokens((6, 6))
    bg = x < 0
    assert int((bg & border).sum()) == 8
    assert int((~bg & border).sum()) == 12
    for rule in nf.IMAGE_FOREGROUND_RULES:
        np.testing.assert_array_equal(nf.orient_cut(x, rule, border)[0], bg)


def test_ties_fall_back_to_the_reference():
    border = nf.border_tokens((2, 2))  # every token is on the border
    x = np.array([1.0, 1.0, -1.0, -1.0])  # equal sizes, equal |x|
    # |x| tie: argmax takes the first token (row-major), which is positive
    for rule in nf.IMAGE_FOREGROUND_RULES:
        part, _, seed, _ = nf.orient_cut(x, rule, border)
        np.testing.assert_array_equal(part, [True, True, False, False])
        assert seed == 0
    x = np.array([-1.0, 1.0, 1.0, -1.0])
    for rule in nf.IMAGE_FOREGROUND_RULES:
        part, _, seed, _ = nf.orient_cut(x, rule, border)
        np.testing.assert_array_equal(part, [True, False, False, True])
        assert seed == 0


def test_reference_rule_matches_the_restatement():
    rng = np.random.default_rng(0)
    border = nf.border_tokens((5, 7))
    for _ in range(50):
        x = rng.standard_normal(35) + rng.uniform(-1, 1)
        part, xo, seed, _ = nf.orient_cut(x, 'reference', border)
        p2, x2, s2 = reference_orientation(x)
        np.testing.assert_array_equal(part, p2)
        np.testing.assert_array_equal(xo, x2)
        assert seed == s2


def test_rule_names_and_inputs_are_checked():
    x = np.array([1.0, -1.0, 0.5, -0.2])
    with pytest.raises(ValueError, match='foreground must be one of'):
        nf.foreground_is_positive(x > 0, x, 'largest')
    with pytest.raises(ValueError, match='video-only'):
        nf.check_foreground_rule('majority')
    with pytest.raises(ValueError, match='needs the border'):
        nf.foreground_is_positive(x > 0, x, 'border')
    with pytest.raises(ValueError, match='differ'):
        nf.foreground_is_positive(x > 0, x[:3], 'reference')
    np.testing.assert_array_equal(
        nf.border_tokens((3, 3)).reshape(3, 3),
        [[1, 1, 1], [1, 0, 1], [1, 1, 1]])


def planted_features(h=8, w=8, obj=(3, 6, 2, 5), seed=0):
    """Two clusters of unit features: object tokens near e0, background
    near e1 (so the cut separates them exactly)."""
    rng = np.random.default_rng(seed)
    f = np.zeros((h, w, 16), np.float32)
    f[..., 1] = 1
    r0, r1, c0, c1 = obj
    f[r0:r1, c0:c1] = 0
    f[r0:r1, c0:c1, 0] = 1
    f += 0.05 * rng.standard_normal(f.shape).astype(np.float32)
    return f.reshape(h * w, 16)


def test_ncut_with_the_border_rule_finds_the_planted_object():
    feats = planted_features()
    obj = np.zeros((8, 8), bool)
    obj[3:6, 2:5] = True
    for rule in ('border', 'smaller'):
        part, vec, seed = nc.ncut(feats, (8, 8), foreground=rule)
        np.testing.assert_array_equal(part, obj)
        assert obj.flat[seed]
    ref, _, _ = nc.ncut(feats, (8, 8))
    # whichever side the reference takes, it is one of the two sides
    assert np.array_equal(ref, obj) or np.array_equal(ref, ~obj)
    objs = nc.ncut_multi(feats, (8, 8), max_objects=2, foreground='border')
    np.testing.assert_array_equal(objs[0]['mask'], obj)


# ------------------------------------------------------------ video rules
def old_video_reference(x):
    """The video rule as the reference code has it: x negated when its
    largest-magnitude entry is negative, then foreground = x > mean(x)."""
    if x[np.argmax(np.abs(x))] < 0:
        x = -x
    return x > x.mean(), x


def test_video_reference_rule_is_unchanged():
    rng = np.random.default_rng(1)
    border = nf.border_tokens((3, 4))
    for _ in range(30):
        x = rng.standard_normal(3 * 12)
        fg, xo = nf.video_foreground(x, 3, 'reference', border)
        fg2, x2 = old_video_reference(x)
        np.testing.assert_array_equal(fg, fg2)
        np.testing.assert_array_equal(xo, x2)


def two_frame_clip():
    """2 frames of 4x4 tokens: a centred 2x2 object (x = -1), background
    +0.2, one background corner token of frame 1 at +3 (largest |x|)."""
    f0 = grid_vector((1, 3, 1, 3), -1.0, 0.2, 4, 4)
    f1 = grid_vector((1, 3, 1, 3), -1.0, 0.2, 4, 4, extra={(3, 3): 3.0})
    obj = grid_vector((1, 3, 1, 3), 1, 0, 4, 4).astype(bool)
    return np.concatenate([f0, f1]), np.concatenate([obj, obj])


def test_video_rules_on_a_hand_made_clip():
    x, obj = two_frame_clip()
    border = nf.border_tokens((4, 4))
    fg, _ = nf.video_foreground(x, 2, 'reference', border)
    np.testing.assert_array_equal(fg, ~obj)  # the background
    for rule in ('border', 'smaller', 'majority', 'previous'):
        fg, xo = nf.video_foreground(x, 2, rule, border)
        np.testing.assert_array_equal(fg, obj, err_msg=rule)
        assert (xo[obj] > 0).all(), rule
    with pytest.raises(ValueError, match='needs the border'):
        nf.video_foreground(x, 2, 'majority')
    with pytest.raises(ValueError, match='cannot be split'):
        nf.video_foreground(x, 3, 'reference')


def test_majority_votes_per_frame_and_previous_follows_the_object():
    border = nf.border_tokens((4, 4))
    # frame 0: the positive side is the centre (no border token, 12 on the
    # negative side); frames 1, 2: the positive side (top two rows and one
    # more token) holds 7 border tokens, the negative side 5. Border votes:
    # 1 positive, 2 negative -> majority takes the negative side; border
    # counts over the clip: 0 + 7 + 7 = 14 positive, 12 + 5 + 5 = 22
    # negative -> the border rule takes the positive side
    f0 = grid_vector((1, 3, 1, 3), 1.0, -0.3, 4, 4)
    f12 = grid_vector((0, 2, 0, 4), 1.0, -1.0, 4, 4, extra={(2, 0): 1.0})
    x = np.concatenate([f0, f12, f12])
    pos = x > x.mean()
    fg, _ = nf.video_foreground(x, 3, 'majority', border)
    np.testing.assert_array_equal(fg, ~pos)
    fg, _ = nf.video_foreground(x, 3, 'border', border)
    np.testing.assert_array_equal(fg, pos)
    # previous: frame 0 by its own border vote (the positive centre), then
    # each frame keeps the side overlapping the previous foreground more
    fg, xo = nf.video_foreground(x, 3, 'previous', border)
    fg = fg.reshape(3, 16)
    np.testing.assert_array_equal(fg[0], pos[:16])
    centre = pos[:16]
    for t in (1, 2):
        side = pos[16 * t:16 * (t + 1)]
        a = (side & fg[t - 1]).sum() / (side | fg[t - 1]).sum()
        b = (~side & fg[t - 1]).sum() / (~side | fg[t - 1]).sum()
        np.testing.assert_array_equal(fg[t], side if a >= b else ~side)
    assert (xo[:16][centre] > 0).all()
    # a previous chunk's last frame decides the first frame
    fg, _ = nf.video_foreground(f0, 1, 'previous', border,
                                previous=~pos[:16])
    np.testing.assert_array_equal(fg, ~pos[:16])


def test_ncut_video_rules_and_faithful():
    T, h, w = 3, 6, 6
    feats = np.stack([planted_features(h, w, (2, 4, 2, 5), seed=t)
                      for t in range(T)])
    obj = np.zeros((h, w), bool)
    obj[2:4, 2:5] = True
    for rule in ('border', 'smaller', 'majority', 'previous'):
        fg, _ = nc.ncut_video(feats, (h, w), tau=0.3, foreground=rule)
        for t in range(T):
            np.testing.assert_array_equal(fg[t], obj, err_msg=rule)
    # chunks of one frame: 'previous' carries the foreground across chunks
    fg, _ = nc.ncut_video(feats, (h, w), max_frames=1, foreground='previous')
    assert all(np.array_equal(f, obj) for f in fg)
    # faithful forces the reference rule
    a = nc.ncut_video(feats, (h, w), faithful=True, foreground='border')[0]
    b = nc.ncut_video(feats, (h, w), faithful=True)[0]
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match='foreground must be one of'):
        nc.ncut_video(feats, (h, w), foreground='largest')


# ------------------------------------------------------------------ models
def test_models_take_the_rule_from_the_config():
    m = MODELS.build(dict(type='TokenCut', backbone=TINY_VIT,
                          foreground='border'))
    assert m.foreground == 'border'
    m = MODELS.build(dict(type='TokenCut', backbone=TINY_VIT,
                          foreground='border', faithful=True))
    assert m.foreground == 'reference'
    with pytest.raises(ValueError, match='TokenCut: foreground'):
        MODELS.build(dict(type='TokenCut', backbone=TINY_VIT,
                          foreground='previous'))
    v = MODELS.build(dict(type='TokenCutVideo', backbone=TINY_VIT,
                          foreground='majority', edges_per_token=20))
    assert v.foreground == 'majority'
    with pytest.raises(ValueError, match='TokenCutVideo: foreground'):
        MODELS.build(dict(type='TokenCutVideo', backbone=TINY_VIT,
                          foreground='largest'))
    torch.manual_seed(0)
    v.init_weights()
    clip = torch.randint(0, 255, (3, 3, 32, 40), dtype=torch.uint8)
    with torch.no_grad():
        out = v.eval().predict([clip])[0]
    assert out.pred_sem_seg.data.shape == (3, 32, 40)


# ---------------------------------------------------------------- datasets
def write_sequence(root, seq, sizes, obj_boxes=None):
    """Frames ``<root>/<seq>/JPEGImages/0000t.jpg`` of the given (H, W)
    sizes and masks (0 / 255) with the object box (x1, y1, x2, y2), or an
    empty mask where the box is None."""
    os.makedirs(osp.join(root, seq, 'JPEGImages'), exist_ok=True)
    os.makedirs(osp.join(root, seq, 'Annotations'), exist_ok=True)
    rng = np.random.default_rng(len(seq))
    for t, (h, w) in enumerate(sizes):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(img).save(
            osp.join(root, seq, 'JPEGImages', f'{3 * t:05d}.jpg'))
        m = np.zeros((h, w), np.uint8)
        box = obj_boxes[t] if obj_boxes else (2, 3, 10, 12)
        if box is not None:
            m[box[1]:box[3], box[0]:box[2]] = 255
        Image.fromarray(m).save(
            osp.join(root, seq, 'Annotations', f'{3 * t:05d}.png'))


CLIP_PIPELINE = [dict(type='LoadVideoFrames', short_side=None,
                      size_divisor=8),
                 dict(type='PackVideoInputs')]


def test_davis_folder_two_sequences(tmp_path):
    root = str(tmp_path)
    write_sequence(root, 'b-seq', [(32, 40)] * 2,
                   [(2, 3, 10, 12), None])
    write_sequence(root, 'a-seq', [(24, 32)] * 3)
    ds = DATASETS.build(dict(type='VideoFramesDataset', data_root=root,
                             pipeline=CLIP_PIPELINE))
    assert [ds.get_data_info(i)['seq_name'] for i in range(2)] == [
        'a-seq', 'b-seq']
    item = ds[1]
    assert item['inputs'].shape == (2, 3, 32, 40)
    assert item['data_samples'].gt_sem_seg.data.shape == (2, 32, 40)
    assert item['data_samples'].seq_name == 'b-seq'
    # one item per frame, boxes from the masks, an empty mask has none
    frames = DATASETS.build(dict(
        type='VideoFramesDataset', data_root=root, items='frame',
        pipeline=[dict(type='LoadImageFromFile', imdecode_backend='pillow'),
                  dict(type='LoadBinaryMask'),
                  dict(type='PackSegInputs',
                       meta_keys=('img_path', 'ori_shape', 'img_shape',
                                  'gt_bboxes', 'seq_name'))]))
    assert len(frames) == 5
    infos = [frames.get_data_info(i) for i in range(5)]
    assert [i['seq_name'] for i in infos] == ['a-seq'] * 3 + ['b-seq'] * 2
    np.testing.assert_array_equal(infos[0]['gt_bboxes'], [[2, 3, 10, 12]])
    assert infos[4]['gt_bboxes'].shape == (0, 4)
    s = frames[3]['data_samples']
    assert s.seq_name == 'b-seq' and s.gt_sem_seg.data.shape == (1, 32, 40)
    with pytest.raises(ValueError, match="items must be 'clip' or 'frame'"):
        DATASETS.build(dict(type='VideoFramesDataset', data_root=root,
                            items='frames', pipeline=[]))


def test_clip_with_differing_frame_sizes(tmp_path):
    root = str(tmp_path)
    write_sequence(root, 'ok', [(24, 32)] * 2)
    write_sequence(root, 'mixed', [(24, 32), (24, 32), (32, 40)])
    bad = osp.join(root, 'mixed', 'JPEGImages', '00006.jpg')
    # a clear error when the dataset is built, naming sequence and frame
    with pytest.raises(ValueError) as e:
        DATASETS.build(dict(type='VideoFramesDataset', data_root=root,
                            pipeline=CLIP_PIPELINE))
    msg = str(e.value)
    assert 'sequence mixed' in msg and 'frame 2' in msg and bad in msg
    assert '40x32 (WxH)' in msg and '32x24' in msg
    # deferred to the pipeline: the same facts, from LoadVideoFrames
    ds = DATASETS.build(dict(type='VideoFramesDataset', data_root=root,
                             check_frame_sizes=False, sequences=['mixed'],
                             pipeline=CLIP_PIPELINE))
    with pytest.raises(RuntimeError) as e:
        ds[0]
    msg = str(e.value)
    assert 'sequence mixed: frame 2' in msg and bad in msg
    # frame items handle it: each frame is an image of its own size
    frames = DATASETS.build(dict(type='VideoFramesDataset', data_root=root,
                                 items='frame', sequences=['mixed'],
                                 pipeline=[]))
    assert len(frames) == 3


# ------------------------------------------------------------------ metrics
def test_metrics_report_every_sequence():
    metric = METRICS.build(dict(type='VideoIoUMetric'))
    samples = []
    for seq, shift in (('a', 0), ('b', 2)):
        gt = torch.zeros(2, 8, 8, dtype=torch.uint8)
        gt[:, 2:6, 2:6] = 1
        pred = torch.zeros_like(gt)
        pred[:, 2 + shift:6 + shift, 2:6] = 1
        s = SegDataSample(pred_sem_seg=PixelData(data=pred),
                          gt_sem_seg=PixelData(data=gt))
        s.set_metainfo(dict(seq_name=seq))
        samples.append(s.to_dict())
    metric.process({}, samples)
    res = metric.evaluate(2)
    assert res['a/iou'] == 1.0 and res['b/iou'] == pytest.approx(8 / 24)
    # the centred box of an 8x8 frame is exactly the object
    assert res['a/iou_centered'] == res['b/iou_centered'] == 1.0
    assert res['num_above_centered'] == 0
    assert res['iou'] == pytest.approx((1 + 8 / 24) / 2)

    corloc = METRICS.build(dict(type='CorLocMetric'))
    samples = []
    for seq, box in (('a', [25, 25, 75, 75]), ('a', [0, 0, 10, 10]),
                     ('b', [25, 25, 75, 75])):
        s = SegDataSample()
        s.set_metainfo(dict(gt_bboxes=np.array([[25, 25, 75, 75]],
                                               np.float32),
                            ori_shape=(100, 100), seq_name=seq))
        s.pred_instances = InstanceData(bboxes=torch.tensor([box]).float())
        samples.append(s.to_dict())
    corloc.process({}, samples)
    res = corloc.evaluate(3)
    assert res['corloc'] == pytest.approx(2 / 3)
    assert res['a/corloc'] == 0.5 and res['b/corloc'] == 1.0
    assert res['a/corloc_centered'] == 1.0
