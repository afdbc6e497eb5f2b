"""ToCo's math (vtseg.functional.toco) on hand-made inputs, and parity with
small re-implementations of the reference formulas (rulixiang/ToCo,
docs/toco.md) written here as loops."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vtseg.functional import (cam_to_label, ctc_loss, label_to_affinity,
                              par_refine, ptc_loss)
from vtseg.functional.toco import (balanced_seg_loss, cam_to_roi_mask,
                                   extract_crops, fuse_refined_labels,
                                   labels_from_mask, normalize_cam,
                                   refine_cams_with_background,
                                   select_local_crops, token_box)


# ------------------------------------------------ reference formulas (loops)
def ref_cam_to_label(cam, cls_label, img_box, bkg, high, low, ignore_mid,
                     ignore_index=255):
    b, c, h, w = cam.shape
    valid = cls_label[:, :, None, None] * cam
    value, lab = valid.max(dim=1)
    lab = lab + 1
    lab[value <= bkg] = 0
    if img_box is None:
        return lab
    if ignore_mid:
        lab[value <= high] = ignore_index
        lab[value <= low] = 0
    out = torch.ones_like(lab) * ignore_index
    for i, (h0, h1, w0, w1) in enumerate(img_box):
        out[i, h0:h1, w0:w1] = lab[i, h0:h1, w0:w1]
    return out


def ref_label_to_aff(label, ignore_index=255):
    b, h, w = label.shape
    flat = label.reshape(b, 1, -1)
    rep = flat.repeat(1, h * w, 1)
    aff = (rep == rep.permute(0, 2, 1)).long()
    for i in range(b):
        aff[i, :, rep[i, 0] == ignore_index] = ignore_index
        aff[i, rep[i, 0] == ignore_index, :] = ignore_index
    aff[:, range(h * w), range(h * w)] = ignore_index
    return aff


def ref_ptc(inputs, mask):
    b, c, h, w = inputs.shape
    x = F.normalize(inputs.reshape(b, c, h * w), p=2, dim=1, eps=1e-8)
    cos = torch.matmul(x.transpose(1, 2), x).abs()
    pos, neg = mask == 1, mask == 0
    return 0.5 * (1 - torch.sum(pos * cos) / (pos.sum() + 1)) + \
        0.5 * torch.sum(neg * cos) / (neg.sum() + 1)


def ref_ctc(student, teacher, flags, temp, ncrops):
    b = flags.shape[0]
    s = student.reshape(ncrops, b, -1).permute(1, 0, 2)
    t = teacher.reshape(2, b, -1).permute(1, 0, 2)
    logits = torch.exp(torch.matmul(t, s.permute(0, 2, 1)) / temp)
    total = 0
    for i in range(b):
        neg = logits[i, :, flags[i] == 0]
        pos_inds = torch.nonzero(flags[i])[:, 0]
        loss = 0
        for j in pos_inds:
            p = logits[i, :, j]
            loss += -torch.log(p / (p + neg.sum(dim=1) + 1e-4))
        loss += -torch.log(1 / (1 + neg.sum(dim=1) + 1e-4))
        total += loss.sum() / 2 / (pos_inds.shape[0] + 1e-4)
    return total / b


def ref_par(imgs, masks, dilations, num_iter):
    kernel = torch.zeros(8, 1, 3, 3)
    for k, (i, j) in enumerate([(0, 0), (0, 1), (0, 2), (1, 0), (1, 2),
                                (2, 0), (2, 1), (2, 2)]):
        kernel[k, 0, i, j] = 1

    def neigh(x):
        b, c, h, w = x.shape
        out = []
        for d in dilations:
            p = F.pad(x, [d] * 4, mode='replicate')
            p = p.reshape(b * c, -1, p.shape[-2], p.shape[-1])
            out.append(F.conv2d(p, kernel, dilation=d).view(b, c, -1, h, w))
        return torch.cat(out, dim=2)

    ker = torch.ones(1, 1, 8, 1, 1)
    for k in (0, 2, 5, 7):
        ker[0, 0, k] = np.sqrt(2)
    pos = torch.cat([ker * d for d in dilations], dim=2)
    masks = F.interpolate(masks, size=imgs.shape[-2:], mode='bilinear',
                          align_corners=True)
    b, c, h, w = imgs.shape
    nb = neigh(imgs)
    rep = imgs.unsqueeze(2).repeat(1, 1, nb.shape[2], 1, 1)
    pos_rep = pos.repeat(b, 1, 1, h, w)
    aff = -((nb - rep).abs() / (nb.std(dim=2, keepdim=True) + 1e-8) /
            0.3) ** 2
    aff = aff.mean(dim=1, keepdim=True)
    pos_aff = -(pos_rep / (pos_rep.std(dim=2, keepdim=True) + 1e-8) /
                0.3) ** 2
    aff = F.softmax(aff, dim=2) + 0.01 * F.softmax(pos_aff, dim=2)
    for _ in range(num_iter):
        masks = (neigh(masks) * aff).sum(2)
    return masks


def ref_refine(images, cams, cls_labels, bkg, img_box, dilations, num_iter,
               ignore_index=255):
    """The reference's refine_cams_with_bkg_v2 for one background score."""
    b, _, h, w = images.shape
    small = F.interpolate(images, size=[h // 2, w // 2], mode='bilinear',
                          align_corners=False)
    labels = torch.cat([torch.ones(b, 1), cls_labels], dim=1)
    wb = torch.cat([torch.ones(b, 1, h, w) * bkg, cams], dim=1)
    wb = F.interpolate(wb, size=[h // 2, w // 2], mode='bilinear',
                       align_corners=False)
    out = torch.ones(b, h, w, dtype=torch.long) * ignore_index
    for i, (h0, h1, w0, w1) in enumerate(img_box):
        key = torch.nonzero(labels[i])[:, 0]
        probs = wb[i, key][None].softmax(dim=1)
        ref = ref_par(small[[i]], probs, dilations, num_iter)
        ref = F.interpolate(ref, size=(h, w), mode='bilinear',
                            align_corners=False)
        lab = key[ref.argmax(dim=1)]
        out[i, h0:h1, w0:w1] = lab[0, h0:h1, w0:w1]
    return out


# ------------------------------------------------------------ cam_to_label
def test_cam_to_label_hand_made():
    cam = torch.tensor([[[[0.9, 0.6, 0.1]], [[0.2, 0.65, 0.3]]]])  # 1,2,1,3
    lab = torch.tensor([[1., 1.]])
    assert cam_to_label(cam, lab).tolist() == [[[1, 2, 0]]]
    # absent class 1 is zeroed: pixel 1 falls back to class 0's 0.6
    assert cam_to_label(cam, torch.tensor([[1., 0.]])).tolist() == \
        [[[1, 1, 0]]]
    # ignore band: > 0.7 keeps its class, (0.25, 0.7] ignored, <= 0.25 bg
    assert cam_to_label(cam, lab, ignore_mid=True).tolist() == \
        [[[1, 255, 255]]]
    cam2 = torch.tensor([[[[0.2]], [[0.1]]]])
    assert cam_to_label(cam2, lab, ignore_mid=True).tolist() == [[[0]]]


def test_cam_to_label_empty_classes_and_box():
    cam = torch.rand(2, 3, 5, 6)
    none = torch.zeros(2, 3)
    assert (cam_to_label(cam, none) == 0).all()
    box = [[1, 3, 2, 5], [0, 0, 0, 0]]  # second image: empty box
    out = cam_to_label(cam, torch.ones(2, 3), valid_box=box,
                       ignore_index=7)
    assert (out[1] == 7).all()
    assert (out[0, :1] == 7).all() and (out[0, 3:] == 7).all()
    assert (out[0, :, :2] == 7).all() and (out[0, :, 5:] == 7).all()
    assert (out[0, 1:3, 2:5] != 7).all()
    assert out.dtype == torch.int64


@pytest.mark.parametrize('ignore_mid', [False, True])
def test_cam_to_label_matches_reference(ignore_mid):
    g = torch.Generator().manual_seed(0)
    cam = torch.rand(3, 4, 9, 11, generator=g)
    lab = (torch.rand(3, 4, generator=g) > 0.5).float()
    box = [[0, 9, 0, 11], [2, 7, 1, 10], [0, 4, 3, 11]]
    ours = cam_to_label(cam, lab, 0.5, 0.7, 0.25, ignore_mid, box)
    ref = ref_cam_to_label(cam, lab, box, 0.5, 0.7, 0.25, ignore_mid)
    assert torch.equal(ours, ref)
    assert torch.equal(cam_to_label(cam, lab, 0.45),
                       ref_cam_to_label(cam, lab, None, 0.45, 0, 0, False))


# ------------------------------------------------------- label_to_affinity
def test_label_to_affinity_hand_made():
    label = torch.tensor([[[0, 1], [1, 255]]])
    aff = label_to_affinity(label)
    expected = [[255, 0, 0, 255], [0, 255, 1, 255], [0, 1, 255, 255],
                [255, 255, 255, 255]]
    assert aff.tolist() == [expected]
    assert aff.dtype == torch.int64


def test_label_to_affinity_single_token_and_all_ignore():
    assert label_to_affinity(torch.tensor([[[3]]])).tolist() == [[[255]]]
    assert (label_to_affinity(torch.full((2, 3, 3), 255)) == 255).all()


def test_label_to_affinity_matches_reference():
    label = torch.randint(0, 4, (3, 5, 4), generator=torch.Generator()
                          .manual_seed(1))
    label[label == 3] = 255
    assert torch.equal(label_to_affinity(label), ref_label_to_aff(label))


# ---------------------------------------------------------------- ptc_loss
def test_ptc_loss_matches_reference_and_gradients():
    g = torch.Generator().manual_seed(2)
    tokens = torch.randn(2, 8, 4, 5, generator=g, requires_grad=True)
    label = torch.randint(0, 3, (2, 4, 5), generator=g)
    label[label == 2] = 255
    aff = label_to_affinity(label)
    loss = ptc_loss(tokens, aff)
    assert torch.allclose(loss, ref_ptc(tokens, aff), atol=1e-6)
    loss.backward()
    assert torch.isfinite(tokens.grad).all()


def test_ptc_loss_all_ignore_single_token_zero_tokens():
    t = torch.randn(2, 4, 3, 3)
    all_ign = torch.full((2, 9, 9), 255)
    assert ptc_loss(t, all_ign).item() == pytest.approx(0.5)
    one = torch.randn(1, 4, 1, 1)
    assert ptc_loss(one, label_to_affinity(torch.zeros(1, 1, 1,
                                                       dtype=torch.long))
                    ).item() == pytest.approx(0.5)
    # zero-norm tokens (padding) stay finite
    z = torch.zeros(1, 4, 2, 2, requires_grad=True)
    loss = ptc_loss(z, label_to_affinity(torch.zeros(1, 2, 2,
                                                     dtype=torch.long)))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    # identical tokens with positive pairs: perfect -> 0.5 * (1 - 12/13)
    same = torch.ones(1, 4, 2, 2)
    aff = label_to_affinity(torch.zeros(1, 2, 2, dtype=torch.long))
    assert ptc_loss(same, aff).item() == pytest.approx(0.5 * (1 - 12 / 13))


def test_ptc_loss_shape_mismatch():
    with pytest.raises(ValueError, match='affinity'):
        ptc_loss(torch.randn(1, 4, 2, 2), torch.zeros(1, 3, 3))


# ---------------------------------------------------------------- ctc_loss
@pytest.mark.parametrize('case', ['mixed', 'no_neg', 'all_neg'])
def test_ctc_loss_matches_reference(case):
    g = torch.Generator().manual_seed(3)
    B, V, D = 3, 6, 16
    s = F.normalize(torch.randn(V * B, D, generator=g), dim=1)
    t = F.normalize(torch.randn(2 * B, D, generator=g), dim=1)
    flags = torch.ones(B, V)
    if case == 'mixed':
        flags[0, 2:4] = 0
        flags[2, 5] = 0
    elif case == 'all_neg':
        flags[:, 2:] = 0
    for temp in (0.5, 1.0):
        ours = ctc_loss(s, t, flags, temp)
        ref = ref_ctc(s, t, flags, temp, V)
        assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6), (ours, ref)


def test_ctc_loss_no_overflow_and_extra_term():
    B, V, D = 2, 4, 8
    s = torch.full((V * B, D), 10.0, requires_grad=True)
    t = torch.full((2 * B, D), 10.0)
    flags = torch.tensor([[1., 1., 0., 1.], [1., 1., 1., 0.]])
    # the reference's exp(800 / 0.5) is inf; log space stays finite
    assert not torch.isfinite(ref_ctc(s.detach(), t, flags, 0.5, V))
    loss = ctc_loss(s, t, flags, 0.5)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
    g = torch.Generator().manual_seed(4)
    s2 = torch.randn(V * B, D, generator=g)
    t2 = torch.randn(2 * B, D, generator=g)
    with_extra = ctc_loss(s2, t2, flags, 0.5)
    without = ctc_loss(s2, t2, flags, 0.5, extra_term=False)
    assert with_extra > without


# ------------------------------------------------------------------- PAR
def test_par_matches_reference():
    g = torch.Generator().manual_seed(5)
    imgs = torch.rand(2, 3, 20, 26, generator=g) * 255
    masks = torch.rand(2, 3, 10, 13, generator=g).softmax(1)
    dil = (1, 2, 4)
    ours = par_refine(imgs, masks, dil, num_iter=4)
    ref = ref_par(imgs, masks, dil, 4)
    assert ours.shape == (2, 3, 20, 26)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5)
    # the default dilations reach past the image (replicate padding)
    full = par_refine(imgs, masks)
    assert torch.allclose(full, ref_par(imgs, masks, (1, 2, 4, 8, 12, 24),
                                        10), rtol=1e-5, atol=1e-5)
    # mass grows by 1.01 per iteration; renormalised: same arg-max
    assert torch.allclose(full.sum(1), torch.full_like(full[:, 0],
                                                       1.01 ** 10),
                          rtol=1e-4)
    ren = par_refine(imgs, masks, renormalize=True)
    assert torch.equal(ren.argmax(1), full.argmax(1))
    assert torch.equal(par_refine(imgs, masks), full)  # deterministic


def test_par_single_pixel_and_constant_image():
    out = par_refine(torch.rand(1, 3, 1, 1), torch.rand(1, 2, 1, 1),
                     num_iter=2)
    assert torch.isfinite(out).all()
    flat = par_refine(torch.full((1, 3, 6, 6), 7.0), torch.rand(1, 2, 6, 6))
    assert torch.isfinite(flat).all()


def test_refine_with_background_matches_reference():
    g = torch.Generator().manual_seed(6)
    B, K, H, W = 3, 4, 24, 20
    images = torch.rand(B, 3, H, W, generator=g) * 255
    cams = torch.rand(B, K, H, W, generator=g)
    labels = torch.tensor([[1., 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 1]])
    cams = cams * labels[:, :, None, None]
    box = [[0, H, 0, W], [2, 20, 3, 18], [0, 10, 0, 20]]
    dil = (1, 2, 4)
    for bkg in (0.7, 0.25):
        ours = refine_cams_with_background(images, cams, labels, bkg,
                                           dilations=dil, num_iter=3)
        ours = fuse_refined_labels(ours, ours, box)  # box only
        ref = ref_refine(images, cams, labels, bkg, box, dil, 3)
        ref_fused = ref.clone()
        ref_fused[ref == 0] = 0
        assert torch.equal(ours, ref_fused)


def test_fuse_refined_labels():
    hi = torch.tensor([[[0, 2, 0, 3]]])
    lo = torch.tensor([[[0, 2, 1, 0]]])
    assert fuse_refined_labels(hi, lo).tolist() == [[[0, 2, 255, 3]]]
    assert fuse_refined_labels(hi, lo, [[0, 1, 0, 2]]).tolist() == \
        [[[0, 2, 255, 255]]]


# ------------------------------------------------------- crops and helpers
def test_normalize_cam_and_roi():
    cam = torch.tensor([[[[1., 3.], [5., 9.]]]])
    n = normalize_cam(cam)
    assert n.min() == 0 and n.max() == pytest.approx(1, abs=1e-5)
    assert torch.isfinite(normalize_cam(torch.zeros(1, 2, 3, 3))).all()
    roi = cam_to_roi_mask(torch.tensor([[[[0.1, 0.5, 0.8]]]]),
                          torch.ones(1, 1))
    assert roi.tolist() == [[[0, 1, 2]]]


def test_select_local_crops_flags_and_determinism():
    roi = torch.zeros(2, 20, 20, dtype=torch.long)
    roi[0, 4:16, 4:16] = 1  # uncertain block
    roi[1, :, :] = 2  # certain foreground everywhere: fallback candidates
    g1 = torch.Generator().manual_seed(0)
    c1, f1 = select_local_crops(roi, num_crops=3, crop_size=8,
                                generator=g1)
    g2 = torch.Generator().manual_seed(0)
    c2, f2 = select_local_crops(roi, num_crops=3, crop_size=8,
                                generator=g2)
    assert torch.equal(c1, c2) and torch.equal(f1, f2)
    assert f1.shape == (2, 5) and (f1[:, :2] == 1).all()
    # centres of image 0 lie in the uncertain block (roi <= 1 everywhere
    # there: all inner pixels are candidates, so check the flags instead)
    for b in range(2):
        for k in range(3):
            i, j = c1[b, k].tolist()
            assert 0 <= i <= 12 and 0 <= j <= 12
            ratio = roi[b, i:i + 8, j:j + 8].sum().item() / 64
            assert f1[b, k + 2].item() == float(ratio > 0.2)
    # image 1: every crop is code 2 -> ratio 2 -> positive
    assert (f1[1, 2:] == 1).all()


def test_select_local_crops_prefers_uncertain():
    roi = torch.full((1, 30, 30), 2, dtype=torch.long)
    roi[0, 10:14, 10:14] = 1  # 16 candidate centres (inner coords 6..9)
    coords, _ = select_local_crops(roi, num_crops=4, crop_size=8,
                                   generator=torch.Generator().manual_seed(1))
    for i, j in coords[0].tolist():
        assert roi[0, i + 4, j + 4] <= 1  # centre pixel is a candidate
    with pytest.raises(ValueError, match='too few'):
        select_local_crops(torch.zeros(1, 8, 8, dtype=torch.long), 8, 8)


def test_extract_crops_view_major():
    img = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    coords = torch.tensor([[[0, 0], [2, 3]], [[1, 1], [3, 0]]])
    crops = extract_crops(img, coords, 3)
    assert crops.shape == (4, 1, 3, 3)
    assert torch.equal(crops[0], img[0, :, 0:3, 0:3])  # view 0, image 0
    assert torch.equal(crops[1], img[1, :, 1:4, 1:4])  # view 0, image 1
    assert torch.equal(crops[2], img[0, :, 2:5, 3:6])  # view 1, image 0
    assert torch.equal(crops[3], img[1, :, 3:6, 0:3])


def test_balanced_seg_loss_never_nan():
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 4, 5, 5, generator=g, requires_grad=True)
    mixed = torch.randint(0, 4, (2, 5, 5), generator=g)
    mixed[0, 0, 0] = 0
    mixed[0, 0, 1] = 2
    a = balanced_seg_loss(logits, mixed)
    b = balanced_seg_loss(logits, mixed, faithful=True)
    assert torch.allclose(a, b, atol=1e-6)
    for label in (torch.zeros(2, 5, 5, dtype=torch.long),  # all background
                  torch.full((2, 5, 5), 2),  # all foreground
                  torch.full((2, 5, 5), 255)):  # all ignore
        loss = balanced_seg_loss(logits, label)
        assert torch.isfinite(loss)
        assert torch.isnan(balanced_seg_loss(logits, label, faithful=True))
        logits.grad = None
        loss.backward()
        assert torch.isfinite(logits.grad).all()


def test_token_box_and_labels_from_mask():
    box = token_box([[0, 224, 0, 200], [30, 100, 0, 7]], 14, (16, 16))
    # 200 px: tokens whose centre (14 t + 7) < 200 -> t <= 13
    assert box.tolist() == [[0, 16, 0, 14], [2, 7, 0, 0]]
    mask = torch.tensor([[[0, 3], [255, 3]], [[0, 0], [0, 0]]])
    lab = labels_from_mask(mask, 4)
    assert lab.tolist() == [[0, 0, 1], [0, 0, 0]]


def test_batch_independence():
    """An image's result does not depend on the other images in its batch
    (docs/toco.md)."""
    g = torch.Generator().manual_seed(8)
    imgs = torch.rand(3, 3, 16, 16, generator=g) * 255
    cams = torch.rand(3, 2, 16, 16, generator=g)
    labels = torch.tensor([[1., 0], [1., 1], [0., 1]])
    full = refine_cams_with_background(imgs, cams, labels, 0.7,
                                       dilations=(1, 2), num_iter=2)
    for i in range(3):
        one = refine_cams_with_background(imgs[i:i + 1], cams[i:i + 1],
                                          labels[i:i + 1], 0.7,
                                          dilations=(1, 2), num_iter=2)
        assert torch.equal(one[0], full[i])
    assert math.isfinite(float(ptc_loss(torch.randn(3, 4, 2, 2),
                                        torch.full((3, 4, 4), 255))))
