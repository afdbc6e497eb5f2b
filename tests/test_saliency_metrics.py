"""Saliency scores (vtseg.functional.saliency) and SaliencyMetric."""
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from vtseg.evaluation import SaliencyMetric
from vtseg.functional import (f_measure, min_max_normalize,
                              saliency_image_stats, saliency_pr_curves,
                              saliency_scores, saliency_scores_from_stats,
                              saliency_thresholds)
from vtseg.registry import METRICS

KEYS = {'mae', 'max_f', 'iou', 'acc'}


# ---------------------------------------------------------------------------
# Independent reference: 255 explicit passes, written from the definitions.
def reference_scores(preds, gts, valids=None, protocol='sod', beta2=0.3,
                     empty_iou=1.0):
    maes, ious, accs, precs, recs = [], [], [], [], []
    for i, (p, g) in enumerate(zip(preds, gts)):
        p = np.asarray(p)
        g = np.asarray(g).astype(bool)
        if valids is not None and valids[i] is not None:
            p, g = p[valids[i]], g[valids[i]]
        p, g = p.ravel(), g.ravel()
        if p.size == 0:
            continue
        maes.append(np.mean(np.abs(p.astype(np.float64) - g)))
        prec_row, rec_row = [], []
        for k in range(255):
            b = p.astype(np.float32) > np.float32(k / 255)
            tp = np.sum(b & g)
            prec_row.append(1.0 if b.sum() == 0 else tp / b.sum())
            rec_row.append(1.0 if g.sum() == 0 else tp / g.sum())
        precs.append(prec_row)
        recs.append(rec_row)
        b = p.astype(np.float32) > 0.5
        inter, union = np.sum(b & g), np.sum(b | g)
        if union == 0:
            if empty_iou is not None:
                ious.append(empty_iou)
        else:
            ious.append(inter / union)
        accs.append(np.mean(b == g))

    def f(pr, rc):
        return 0.0 if beta2 * pr + rc == 0 else \
            (1 + beta2) * pr * rc / (beta2 * pr + rc)

    precs, recs = np.array(precs), np.array(recs)
    if protocol == 'sod':
        pm, rm = precs.mean(0), recs.mean(0)
        max_f = max(f(pm[k], rm[k]) for k in range(255))
    else:
        max_f = max(
            np.mean([f(precs[n, k], recs[n, k]) for n in range(len(precs))])
            for k in range(255))
    return dict(
        mae=np.mean(maes), max_f=max_f, iou=np.mean(ious), acc=np.mean(accs))


def assert_scores(got, want, tol=1e-12):
    assert set(got) == KEYS
    for k in KEYS:
        assert got[k] == pytest.approx(want[k], abs=tol), k


# ---------------------------------------------------------------------------
# Hand-computed values.
IMG_A = (np.array([[0.9, 0.2], [0.6, 0.0]]), np.array([[1, 0], [1, 1]], bool))
# empty ground truth, one weak false positive
IMG_B = (np.array([[0.3, 0.0], [0.0, 0.0]]), np.zeros((2, 2), bool))


def test_single_image_hand_computed():
    # 255*p = 229.5, 51, 153, 0: foreground {0.9, 0.2, 0.6} for k <= 50
    # (P = R = 2/3), {0.9, 0.6} for 51 <= k <= 152 (P = 1, R = 2/3: F =
    # 1.3 * 2/3 / (0.3 + 2/3) = 26/29), {0.9} up to 229, then nothing.
    s = saliency_scores([IMG_A[0]], [IMG_A[1]])
    assert_scores(s, dict(mae=1.7 / 4, max_f=26 / 29, iou=2 / 3, acc=3 / 4))


def test_two_images_sod_and_per_image_protocols():
    preds, gts = [IMG_A[0], IMG_B[0]], [IMG_A[1], IMG_B[1]]
    # B: R = 1 (empty gt) at every k; P = 0 for k <= 76 (255*0.3 = 76.5),
    # P = 1 (empty prediction) after. sod: at 77 <= k <= 152 mean P = 1,
    # mean R = (2/3 + 1)/2 = 5/6 -> F = 1.3*(5/6) / (0.3 + 5/6) = 65/68.
    s = saliency_scores(preds, gts)
    assert_scores(s, dict(mae=0.25, max_f=65 / 68, iou=5 / 6, acc=0.875))
    # per image: at 77 <= k <= 152, F_A = 26/29 and F_B = 1 -> 55/58.
    s = saliency_scores(preds, gts, protocol='per_image')
    assert_scores(s, dict(mae=0.25, max_f=55 / 58, iou=5 / 6, acc=0.875))
    # IoU of B (both masks empty at 0.5) left out instead of counted as 1
    s = saliency_scores(preds, gts, empty_iou=None)
    assert s['iou'] == pytest.approx(2 / 3)


def test_perfect_and_inverted_prediction():
    gt = np.zeros((4, 5), bool)
    gt[1:3, 1:4] = True
    assert_scores(
        saliency_scores([gt.astype(np.float32)], [gt]),
        dict(mae=0.0, max_f=1.0, iou=1.0, acc=1.0))
    # inverted: every predicted pixel is background -> P = R = 0 -> F = 0
    assert_scores(
        saliency_scores([(~gt).astype(np.float32)], [gt]),
        dict(mae=1.0, max_f=0.0, iou=0.0, acc=0.0))


def test_all_foreground_and_empty_ground_truth():
    full = np.ones((3, 3), bool)
    empty = np.zeros((3, 3), bool)
    # all foreground, constant 0.7: P = R = 1 up to k = 178, then R = 0
    assert_scores(
        saliency_scores([np.full((3, 3), 0.7)], [full]),
        dict(mae=0.3, max_f=1.0, iou=1.0, acc=1.0))
    # all foreground, constant 0.4: still F = 1 at low thresholds, but
    # nothing above 0.5
    assert_scores(
        saliency_scores([np.full((3, 3), 0.4)], [full]),
        dict(mae=0.6, max_f=1.0, iou=0.0, acc=0.0))
    # empty gt, empty prediction: P = R = 1, IoU := 1
    assert_scores(
        saliency_scores([np.zeros((3, 3))], [empty]),
        dict(mae=0.0, max_f=1.0, iou=1.0, acc=1.0))
    # empty gt, prediction everywhere: P = 0, R = 1 -> F = 0, IoU = 0
    assert_scores(
        saliency_scores([np.ones((3, 3))], [empty]),
        dict(mae=1.0, max_f=0.0, iou=0.0, acc=0.0))


def test_no_nan_anywhere():
    preds = [np.zeros((2, 2)), np.ones((2, 2)), np.full((2, 2), 0.5)]
    gts = [np.zeros((2, 2), bool), np.zeros((2, 2), bool),
           np.ones((2, 2), bool)]
    for protocol in ('sod', 'per_image'):
        s = saliency_scores(preds, gts, protocol=protocol)
        assert all(np.isfinite(v) for v in s.values())
        assert_scores(s, reference_scores(preds, gts, protocol=protocol))
    p, r = saliency_pr_curves([saliency_image_stats(p, g)
                               for p, g in zip(preds, gts)])
    assert np.isfinite(p).all() and np.isfinite(r).all()
    assert f_measure(0.0, 0.0) == 0.0


@pytest.mark.parametrize('protocol', ['sod', 'per_image'])
def test_matches_reference_on_random_maps(protocol):
    rng = np.random.default_rng(0)
    preds, gts, valids = [], [], []
    for i, (h, w) in enumerate([(7, 9), (5, 5), (12, 4), (6, 11), (3, 3)]):
        gt = rng.random((h, w)) < 0.4
        if i == 1:
            gt[:] = False  # empty ground truth
        if i == 4:
            gt[:] = True  # all foreground
        pred = np.clip(gt * 0.5 + rng.random((h, w)) * 0.6, 0, 1)
        if i == 2:  # values exactly on the threshold grid
            pred = rng.integers(0, 256, (h, w)) / 255.0
        preds.append(pred.astype(np.float32 if i % 2 else np.float64))
        gts.append(gt)
        valids.append(rng.random((h, w)) < 0.8 if i == 3 else None)
    assert_scores(
        saliency_scores(preds, gts, protocol=protocol),
        reference_scores(preds, gts, protocol=protocol))
    assert_scores(
        saliency_scores(preds, gts, valids=valids, protocol=protocol),
        reference_scores(preds, gts, valids=valids, protocol=protocol))


def test_threshold_grid_rule():
    # a map quantised to v/255 is foreground at t_k exactly when v > k, as
    # float32 or float64
    v = np.arange(256)
    for dtype in (np.float32, np.float64):
        pred = (v / 255.0).astype(dtype)[None]
        stats = [saliency_image_stats(pred, np.ones_like(pred, bool))]
        _, recall = saliency_pr_curves(stats)
        count = recall[0] * 256  # foreground pixels at each threshold
        np.testing.assert_array_equal(count, 255 - np.arange(255))
    t = saliency_thresholds()
    assert t.shape == (255, ) and t[0] == 0 and t[-1] == np.float32(254 / 255)
    # 0.5 is not foreground for IoU / Acc (strict rule)
    s = saliency_image_stats(np.array([[0.5, 0.51]]), np.array([[1, 1]]))
    assert (s['tp'], s['fn']) == (1, 1)


def test_histogram_bins_at_threshold_edges():
    # values on the grid and one float32 ulp either side, plus 0 and 1
    t = saliency_thresholds()
    edges = np.concatenate([
        t, np.nextafter(t, np.float32(1)), np.nextafter(t, np.float32(0)),
        np.float32([0, 1, np.nextafter(np.float32(1), np.float32(0))])
    ])
    edges = np.clip(edges, 0, 1).astype(np.float32)
    gt = np.arange(edges.size) % 2 == 0
    hist = saliency_image_stats(edges[None], gt[None])['hist']
    count = (edges[:, None] > t[None]).sum(1)  # number of t_k below p
    want = np.stack([np.bincount(count[~gt], minlength=256),
                     np.bincount(count[gt], minlength=256)])
    np.testing.assert_array_equal(hist, want)


def test_stats_accumulate_per_image():
    preds, gts = [IMG_A[0], IMG_B[0]], [IMG_A[1], IMG_B[1]]
    stats = [saliency_image_stats(p, g) for p, g in zip(preds, gts)]
    assert stats[0]['hist'].shape == (2, 256)
    assert stats[0]['hist'].sum() == 4 and stats[0]['num_pixels'] == 4
    assert saliency_scores_from_stats(stats) == saliency_scores(preds, gts)
    # images without valid pixels are left out of every mean
    stats.append(saliency_image_stats(IMG_A[0], IMG_A[1],
                                      valid=np.zeros((2, 2), bool)))
    assert saliency_scores_from_stats(stats) == saliency_scores(preds, gts)


def test_min_max_normalize():
    np.testing.assert_allclose(
        min_max_normalize(np.array([[2.0, 4.0], [3.0, 2.0]])),
        [[0, 1], [0.5, 0]])
    np.testing.assert_array_equal(min_max_normalize(np.full((2, 2), 3.)), 0)


def test_clear_errors():
    p, g = IMG_A
    with pytest.raises(ValueError, match='image 1: .*shape'):
        saliency_scores([p, p], [g, g[:1]])
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        saliency_scores([p * 2], [g])
    with pytest.raises(ValueError, match='finite'):
        saliency_scores([np.full((2, 2), np.nan)], [g])
    with pytest.raises(ValueError, match='boolean'):
        saliency_scores([p], [g * 255])
    with pytest.raises(TypeError, match='float'):
        saliency_scores([(p * 255).astype(np.uint8)], [g])
    with pytest.raises(ValueError, match='2 predictions but 1'):
        saliency_scores([p, p], [g])
    with pytest.raises(ValueError, match='protocol'):
        saliency_scores([p], [g], protocol='mean')
    with pytest.raises(ValueError, match='at least one image'):
        saliency_scores([], [])


# ---------------------------------------------------------------------------
# SaliencyMetric on SegDataSamples.
def make_sample(pred, gt, name='img.jpg'):
    sample = SegDataSample(metainfo=dict(img_path=f'/data/{name}'))
    sample.seg_logits = PixelData(data=torch.as_tensor(pred).float())
    sample.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None].long())
    return sample


def run_metric(metric, samples):
    # Evaluator passes dicts; pass half of them as objects to cover both.
    metric.process({}, [s.to_dict() if i % 2 else s
                        for i, s in enumerate(samples)])
    return metric.evaluate(len(samples))


def test_metric_probabilities_and_two_channel_logits():
    rng = np.random.default_rng(1)
    gts = [rng.random((6, 7)) < 0.5, rng.random((5, 4)) < 0.3]
    probs = [rng.random(g.shape).astype(np.float32) for g in gts]
    want = saliency_scores(probs, gts)

    # single channel: mmseg's postprocess already stored sigmoid(logits)
    metric = METRICS.build(dict(type='SaliencyMetric'))
    got = run_metric(metric,
                     [make_sample(p[None], g) for p, g in zip(probs, gts)])
    assert_scores(got, want, tol=1e-7)

    # two channels of logits: softmax foreground = sigmoid(l1 - l0)
    logits = [np.stack([np.zeros_like(p), np.log(p / (1 - p))]) for p in probs]
    got = run_metric(SaliencyMetric(),
                     [make_sample(lg, g) for lg, g in zip(logits, gts)])
    assert_scores(got, want, tol=1e-6)

    # raw single-channel logits need activation='sigmoid'
    samples = [make_sample(lg[1:], g) for lg, g in zip(logits, gts)]
    with pytest.raises(ValueError, match="activation='sigmoid'"):
        run_metric(SaliencyMetric(), samples)
    got = run_metric(SaliencyMetric(activation='sigmoid'), samples)
    assert_scores(got, want, tol=1e-6)

    got = run_metric(SaliencyMetric(protocol='per_image'),
                     [make_sample(p[None], g) for p, g in zip(probs, gts)])
    assert_scores(got, saliency_scores(probs, gts, protocol='per_image'),
                  tol=1e-7)


def test_metric_resizes_to_ground_truth():
    rng = np.random.default_rng(2)
    gt = rng.random((9, 12)) < 0.5
    prob = rng.random((3, 4)).astype(np.float32)
    got = run_metric(SaliencyMetric(), [make_sample(prob[None], gt)])
    resized = F.interpolate(
        torch.from_numpy(prob)[None, None], size=(9, 12), mode='bilinear',
        align_corners=False)[0, 0].numpy()
    assert_scores(got, saliency_scores([resized], [gt]), tol=1e-7)


def test_metric_ignore_index_and_bad_labels():
    gt = np.array([[1, 0, 255], [1, 255, 0]])
    prob = np.array([[0.9, 0.1, 0.8], [0.7, 0.2, 0.0]], np.float32)
    valid = gt != 255
    got = run_metric(SaliencyMetric(), [make_sample(prob[None], gt)])
    assert_scores(got, saliency_scores([prob], [gt == 1], valids=[valid]),
                  tol=1e-7)
    assert got['iou'] == 1.0  # both ignored pixels would be errors
    got = run_metric(SaliencyMetric(ignore_mode='background'),
                     [make_sample(prob[None], gt)])
    assert_scores(got, saliency_scores([prob], [gt == 1]), tol=1e-7)
    with pytest.raises(ValueError, match='img.jpg.*LoadBinaryMask'):
        run_metric(SaliencyMetric(), [make_sample(prob[None], gt * 0 + 2)])


def test_metric_results_are_small_and_picklable():
    metric = SaliencyMetric()
    gt = np.zeros((200, 300), bool)
    metric.process({}, [make_sample(np.full((1, 200, 300), 0.2), gt)])
    blob = pickle.dumps(metric.results)
    assert len(blob) < 8000  # histograms, not the 60000-pixel map


def test_metric_writes_maps(tmp_path):
    out = str(tmp_path / 'maps')
    prob = np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)
    metric = SaliencyMetric(output_dir=out)
    run_metric(metric, [make_sample(prob[None], np.zeros((2, 2)), 'a.jpg')])
    saved = np.array(Image.open(osp.join(out, 'a.png')))
    np.testing.assert_array_equal(saved, np.rint(prob * 255))
    metric = SaliencyMetric(output_dir=out, format_only=True)
    sample = SegDataSample(metainfo=dict(img_path='/x/b.jpg'))
    sample.seg_logits = PixelData(data=torch.from_numpy(prob)[None])
    metric.process({}, [sample])
    assert metric.evaluate(1) == {}
    assert osp.isfile(osp.join(out, 'b.png'))


def test_metric_min_max_normalize():
    gt = np.array([[1, 0], [1, 0]])
    raw = np.array([[5.0, 1.0], [3.0, 1.0]], np.float32)
    got = run_metric(SaliencyMetric(min_max_normalize=True),
                     [make_sample(raw[None], gt)])
    assert_scores(got, saliency_scores([min_max_normalize(raw)], [gt]),
                  tol=1e-7)


def test_metric_argument_errors():
    with pytest.raises(ValueError, match='protocol'):
        SaliencyMetric(protocol='x')
    with pytest.raises(ValueError, match='activation'):
        SaliencyMetric(activation='relu')
    with pytest.raises(ValueError, match='output_dir'):
        SaliencyMetric(format_only=True)
    with pytest.raises(ValueError, match='1 or 2 channels'):
        SaliencyMetric().process(
            {}, [make_sample(np.zeros((3, 2, 2)), np.zeros((2, 2)))])
