"""Pure-PyTorch mmcv ops (mmcv-lite) against brute-force references."""
import math

import numpy as np
import pytest
import torch

import vtseg  # noqa: F401
from vtseg.compat import MissingCompiledOpError, has_compiled_mmcv_ops

pytestmark = pytest.mark.skipif(
    has_compiled_mmcv_ops(), reason='full mmcv installed: compiled ops used')


def brute_nms(boxes, scores, thr, offset=0):
    """Greedy NMS, one box at a time, plain Python."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        ok = True
        for j in keep:
            xx1 = max(boxes[i][0], boxes[j][0])
            yy1 = max(boxes[i][1], boxes[j][1])
            xx2 = min(boxes[i][2], boxes[j][2])
            yy2 = min(boxes[i][3], boxes[j][3])
            w = max(0.0, xx2 - xx1 + offset)
            h = max(0.0, yy2 - yy1 + offset)
            a_i = (boxes[i][2] - boxes[i][0] + offset) * (
                boxes[i][3] - boxes[i][1] + offset)
            a_j = (boxes[j][2] - boxes[j][0] + offset) * (
                boxes[j][3] - boxes[j][1] + offset)
            if w * h / (a_i + a_j - w * h) > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def random_boxes(n, seed, size=100.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3 + 1
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g)


@pytest.mark.parametrize('offset', [0, 1])
@pytest.mark.parametrize('thr', [0.3, 0.5, 0.7])
def test_nms_matches_brute_force(thr, offset):
    from mmcv.ops import nms
    for seed in range(5):
        boxes, scores = random_boxes(60, seed)
        dets, inds = nms(boxes, scores, thr, offset=offset)
        ref = brute_nms(boxes.tolist(), scores.tolist(), thr, offset)
        assert inds.tolist() == ref
        assert torch.equal(dets[:, :4], boxes[inds])
        assert torch.equal(dets[:, 4], scores[inds])


def test_nms_numpy_and_empty():
    from mmcv.ops import nms
    boxes, scores = random_boxes(10, 3)
    dets, inds = nms(boxes.numpy(), scores.numpy(), 0.5)
    assert isinstance(dets, np.ndarray) and isinstance(inds, np.ndarray)
    dets, inds = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert inds.numel() == 0 and inds.dtype == torch.long


def test_batched_nms_is_per_class():
    from mmcv.ops import batched_nms
    boxes, scores = random_boxes(80, 7)
    idxs = torch.arange(80) % 3
    dets, keep = batched_nms(boxes, scores, idxs, dict(iou_threshold=0.5))
    ref = []
    for c in range(3):
        ids = torch.nonzero(idxs == c).flatten().tolist()
        sel = brute_nms([boxes[i].tolist() for i in ids],
                        [float(scores[i]) for i in ids], 0.5)
        ref += [ids[s] for s in sel]
    assert sorted(keep.tolist()) == sorted(ref)
    # sorted by score, descending
    assert torch.all(dets[:-1, 4] >= dets[1:, 4])


def bilinear(feat, y, x):
    """mmcv's bilinear_interpolate for one channel map, scalar coords."""
    H, W = feat.shape
    if y < -1.0 or y > H or x < -1.0 or x > W:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(math.floor(y)), int(math.floor(x))
    if y_low >= H - 1:
        y_high = y_low = H - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= W - 1:
        x_high = x_low = W - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * feat[y_low, x_low] + hy * lx * feat[y_low, x_high] +
            ly * hx * feat[y_high, x_low] + ly * lx * feat[y_high, x_high])


def brute_roi_align(feat, rois, out_size, scale, ratio, aligned, mode):
    ph, pw = out_size
    R, C = rois.shape[0], feat.shape[1]
    out = np.zeros((R, C, ph, pw))
    f = feat.double().numpy()
    for r in range(R):
        b = int(rois[r, 0])
        off = 0.5 if aligned else 0.0
        x1, y1, x2, y2 = [float(v) * scale - off for v in rois[r, 1:]]
        rw, rh = x2 - x1, y2 - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / ph, rw / pw
        gh = ratio if ratio > 0 else int(math.ceil(rh / ph))
        gw = ratio if ratio > 0 else int(math.ceil(rw / pw))
        for c in range(C):
            for i in range(ph):
                for j in range(pw):
                    vals = []
                    for iy in range(gh):
                        y = y1 + i * bh + (iy + 0.5) * bh / gh
                        for ix in range(gw):
                            x = x1 + j * bw + (ix + 0.5) * bw / gw
                            vals.append(bilinear(f[b, c], y, x))
                    if vals:
                        out[r, c, i, j] = (np.mean(vals) if mode == 'avg'
                                           else np.max(vals))
    return out


def make_rois(seed, n=6, batch=2, size=20.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size * 0.7 - 2
    wh = torch.rand(n, 2, generator=g) * size * 0.6 + 0.5
    b = torch.randint(0, batch, (n, 1), generator=g).float()
    return torch.cat([b, xy, xy + wh], 1)


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('ratio', [0, 2])
@pytest.mark.parametrize('mode', ['avg', 'max'])
def test_roi_align_matches_brute_force(aligned, ratio, mode):
    from mmcv.ops import RoIAlign
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 3, 12, 10, generator=g)
    rois = make_rois(1)
    op = RoIAlign((3, 2), spatial_scale=0.5, sampling_ratio=ratio,
                  pool_mode=mode, aligned=aligned)
    out = op(feat, rois)
    ref = brute_roi_align(feat, rois, (3, 2), 0.5, ratio, aligned, mode)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('mode', ['avg', 'max'])
def test_roi_align_gradient(mode):
    from mmcv.ops import roi_align
    g = torch.Generator().manual_seed(1)
    feat = torch.randn(2, 2, 8, 9, generator=g, dtype=torch.float64,
                       requires_grad=True)
    rois = make_rois(2, n=4, size=14.0).double()
    out = roi_align(feat, rois, (2, 3), 0.5, 2, mode, True)
    w = torch.randn(out.shape, generator=g, dtype=torch.float64)
    (grad, ) = torch.autograd.grad((out * w).sum(), feat)
    # finite differences of the brute-force reference
    eps = 1e-6
    f0 = feat.detach().clone()
    num = torch.zeros_like(f0)
    base = (torch.from_numpy(
        brute_roi_align(f0, rois, (2, 3), 0.5, 2, True, mode)) * w).sum()
    for idx in np.ndindex(*f0.shape):
        f1 = f0.clone()
        f1[idx] += eps
        val = (torch.from_numpy(
            brute_roi_align(f1, rois, (2, 3), 0.5, 2, True, mode)) * w).sum()
        num[idx] = (val - base) / eps
    torch.testing.assert_close(grad, num, rtol=1e-4, atol=1e-4)


def test_bbox_overlaps():
    from mmcv.ops import bbox_overlaps
    a, _ = random_boxes(5, 1)
    b, _ = random_boxes(4, 2)
    iou = bbox_overlaps(a, b)
    for i in range(5):
        for j in range(4):
            lt = torch.maximum(a[i, :2], b[j, :2])
            rb = torch.minimum(a[i, 2:], b[j, 2:])
            inter = (rb - lt).clamp(min=0).prod()
            ua = (a[i, 2:] - a[i, :2]).prod() + (b[j, 2:] - b[j, :2]).prod()
            assert abs(float(iou[i, j]) - float(inter / (ua - inter))) < 1e-5
    aligned = bbox_overlaps(a[:4], b, aligned=True)
    torch.testing.assert_close(aligned, torch.diagonal(iou[:4]))


def test_sigmoid_focal_loss_matches_mmdet_python():
    from mmcv.ops import sigmoid_focal_loss
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 4, generator=g, requires_grad=True)
    target = torch.tensor([0, 1, 2, 3, 4, 1, 4])  # 4 = background
    loss = sigmoid_focal_loss(logits, target, 2.0, 0.25, None, 'none')
    onehot = torch.nn.functional.one_hot(target, 5)[:, :4].float()
    ref = py_sigmoid_focal_loss(logits, onehot, None, 2.0, 0.25, 'none')
    torch.testing.assert_close(loss, ref)
    g1 = torch.autograd.grad(loss.sum(), logits)[0]
    g2 = torch.autograd.grad(ref.sum(), logits)[0]
    torch.testing.assert_close(g1, g2)


def test_point_sample_and_simple_roi_align_work():
    from mmcv.ops import SimpleRoIAlign, point_sample
    feat = torch.arange(16.).reshape(1, 1, 4, 4)
    pts = torch.tensor([[[0.5, 0.5]]])
    assert point_sample(feat, pts).shape == (1, 1, 1)
    out = SimpleRoIAlign((2, 2), 1.0)(feat, torch.tensor([[0, 0, 0, 4, 4.]]))
    assert out.shape == (1, 1, 2, 2)


def test_missing_compiled_op_error_names_op_and_fix():
    from mmcv.ops import DeformConv2d
    conv = DeformConv2d(2, 2, 3)
    with pytest.raises(MissingCompiledOpError) as err:
        conv(torch.zeros(1, 2, 5, 5), torch.zeros(1, 18, 3, 3))
    msg = str(err.value)
    assert 'deform_conv' in msg and 'full mmcv' in msg


def test_mmseg_and_mmdet_import():
    import mmdet.models  # noqa: F401
    import mmseg.models  # noqa: F401
    from mmengine.utils.dl_utils import mmcv_full_available
    assert not mmcv_full_available()


def test_nothing_patched_with_full_mmcv(monkeypatch):
    import sys

    from vtseg.compat import mmcv_ops
    monkeypatch.setitem(sys.modules, 'mmcv._ext', None)
    monkeypatch.delitem(sys.modules, 'mmcv._ext')
    monkeypatch.setattr(mmcv_ops, 'has_compiled_mmcv_ops', lambda: True)
    assert mmcv_ops.install() is False
    assert 'mmcv._ext' not in sys.modules
