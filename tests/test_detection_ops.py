"""Pure-PyTorch nms / batched_nms / RoIAlign (mmcv-lite) on the inputs that
detectors produce at the edges: empty inputs and boxes outside the image,
against the brute-force references of tests/test_compat_ops.py."""
import numpy as np
import pytest
import torch

import vtseg  # noqa: F401
from vtseg.compat import has_compiled_mmcv_ops

from test_compat_ops import brute_nms, brute_roi_align  # noqa: E402

pytestmark = pytest.mark.skipif(
    has_compiled_mmcv_ops(), reason='full mmcv installed: compiled ops used')


def boxes_around_image(n, seed, size=64.0):
    """Boxes of which many lie partly or wholly outside [0, size]^2."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size * 2 - size / 2
    wh = torch.rand(n, 2, generator=g) * size / 2 + 0.5
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g)


@pytest.mark.parametrize('seed', range(4))
def test_nms_boxes_outside_image(seed):
    from mmcv.ops import nms
    boxes, scores = boxes_around_image(50, seed)
    assert (boxes < 0).any() and (boxes > 64).any()
    _, inds = nms(boxes, scores, 0.4)
    assert inds.tolist() == brute_nms(boxes.tolist(), scores.tolist(), 0.4)


def test_batched_nms_empty_and_outside():
    from mmcv.ops import batched_nms
    # mmcv's own wrapper needs boxes.max() unless class-agnostic (the same
    # with full mmcv); mmdet checks for empty inputs before calling it
    dets, keep = batched_nms(torch.zeros(0, 4), torch.zeros(0),
                             torch.zeros(0, dtype=torch.long),
                             dict(iou_threshold=0.5, class_agnostic=True))
    assert dets.shape == (0, 5) and keep.numel() == 0
    boxes, scores = boxes_around_image(60, 11)
    idxs = torch.arange(60) % 4
    for agnostic in (False, True):
        _, keep = batched_nms(boxes, scores, idxs,
                              dict(iou_threshold=0.5,
                                   class_agnostic=agnostic))
        groups = [list(range(60))] if agnostic else [
            torch.nonzero(idxs == c).flatten().tolist() for c in range(4)]
        ref = []
        for ids in groups:
            sel = brute_nms([boxes[i].tolist() for i in ids],
                            [float(scores[i]) for i in ids], 0.5)
            ref += [ids[s] for s in sel]
        assert sorted(keep.tolist()) == sorted(ref)


def test_mmdet_multiclass_nms_empty():
    from mmdet.models.layers import multiclass_nms
    dets, labels = multiclass_nms(torch.zeros(0, 4), torch.zeros(0, 4),
                                  0.05, dict(type='nms', iou_threshold=0.5),
                                  100)
    assert dets.shape == (0, 5) and labels.numel() == 0


@pytest.mark.parametrize('mode', ['avg', 'max'])
def test_roi_align_no_rois(mode):
    from mmcv.ops import RoIAlign
    feat = torch.randn(2, 3, 8, 8, requires_grad=True)
    op = RoIAlign((7, 7), spatial_scale=0.25, sampling_ratio=0,
                  pool_mode=mode, aligned=True)
    out = op(feat, torch.zeros(0, 5))
    assert out.shape == (0, 3, 7, 7)
    out.sum().backward()
    assert torch.equal(feat.grad, torch.zeros_like(feat))


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('mode', ['avg', 'max'])
def test_roi_align_rois_outside_image(aligned, mode):
    from mmcv.ops import RoIAlign
    g = torch.Generator().manual_seed(5)
    feat = torch.randn(2, 2, 10, 12, generator=g)
    # image of 40x48 px at scale 0.25: rois wholly left of / below the
    # image, straddling its corners, and inside
    rois = torch.tensor([[0, -30., -20., -5., -2.], [1, 50., 45., 70., 60.],
                         [0, -8., -8., 10., 12.], [1, 40., 30., 60., 50.],
                         [0, 4., 4., 30., 20.], [1, -100., 5., 100., 6.]])
    op = RoIAlign((3, 3), spatial_scale=0.25, sampling_ratio=2,
                  pool_mode=mode, aligned=aligned)
    out = op(feat, rois)
    ref = brute_roi_align(feat, rois, (3, 3), 0.25, 2, aligned, mode)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)
    assert torch.all(out[0] == 0)  # wholly outside: every sample is 0


def test_roi_align_gradient_outside_image():
    from mmcv.ops import RoIAlign
    feat = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, -3., -3., 9., 9.], [0, 20., 20., 30., 30.]],
                        dtype=torch.float64)
    op = RoIAlign((2, 2), spatial_scale=0.5, sampling_ratio=2,
                  pool_mode='avg', aligned=True)
    out = op(feat, rois)
    out.sum().backward()
    # a linear op: the gradient is the sum of the sampling weights, which
    # finite differences of the pure function reproduce
    from vtseg.compat import torch_ops
    eps = 1e-6
    base = torch_ops.roi_align(feat.detach(), rois, (2, 2), 0.5, 2, 'avg',
                               True).sum()
    for idx in [(0, 0, 0, 0), (0, 1, 2, 3), (0, 0, 5, 5)]:
        f2 = feat.detach().clone()
        f2[idx] += eps
        num = (torch_ops.roi_align(f2, rois, (2, 2), 0.5, 2, 'avg',
                                   True).sum() - base) / eps
        assert abs(float(num) - float(feat.grad[idx])) < 1e-5
