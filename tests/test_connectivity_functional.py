"""Connectivity labels, bilateral voting, edges, losses and instance split
(vtseg.functional.connectivity) against straightforward re-statements."""
import math

import numpy as np
import pytest
import torch

from vtseg.functional import (CONNECTIVITY_OFFSETS, bce_on_probs, bicon_loss,
                              bilateral_voting, connectivity_decode,
                              connectivity_edge, connectivity_loss_terms,
                              connectivity_votes, dconn_loss,
                              instance_to_connectivity, mask_to_connectivity,
                              soft_dice_loss, split_instances)

OFFS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


# ------------------------------------------------ independent re-statements
def loop_labels(mask, dilations=(1, )):
    """Pixel loops straight from the definition."""
    B, K, H, W = mask.shape
    J = len(dilations)
    out = torch.zeros(B, K * 8 * J, H, W)
    for b in range(B):
        for k in range(K):
            for j, dil in enumerate(dilations):
                for d, (dy, dx) in enumerate(OFFS):
                    for y in range(H):
                        for x in range(W):
                            yy, xx = y + dil * dy, x + dil * dx
                            nb = mask[b, k, yy, xx] if (0 <= yy < H and
                                                        0 <= xx < W) else 0
                            out[b, (k * J + j) * 8 + d, y, x] = \
                                mask[b, k, y, x] * nb
    return out


def loop_votes(conn, dilations=(1, )):
    B, C, H, W = conn.shape
    J = len(dilations)
    out = torch.zeros_like(conn)
    for b in range(B):
        for k in range(C // (8 * J)):
            for j, dil in enumerate(dilations):
                base = (k * J + j) * 8
                for d, (dy, dx) in enumerate(OFFS):
                    for y in range(H):
                        for x in range(W):
                            yy, xx = y + dil * dy, x + dil * dx
                            if 0 <= yy < H and 0 <= xx < W:
                                out[b, base + d, y, x] = (
                                    conn[b, base + d, y, x] *
                                    conn[b, base + 7 - d, yy, xx])
    return out


def pad_votes(conn):
    """Votes by zero padding + indexing (dilation 1), independent of the
    slicing code, for the loss re-statements."""
    B, C, H, W = conn.shape
    p = torch.nn.functional.pad(conn, (1, 1, 1, 1))
    out = []
    for k in range(C // 8):
        for d, (dy, dx) in enumerate(OFFS):
            opp = p[:, k * 8 + 7 - d, 1 + dy:1 + dy + H, 1 + dx:1 + dx + W]
            out.append(conn[:, k * 8 + d] * opp)
    return torch.stack(out, 1)


def shift_matrix_votes(conn):
    """The reference formulation: dense 0/1 translation matrices
    multiplied on both sides (BiconNet / DconnNet), one class."""
    B, _, H, W = conn.shape
    hori = torch.zeros(W, W)
    hori[torch.arange(W - 1), torch.arange(1, W)] = 1  # x @ hori: x[c-1]
    vert = torch.zeros(H, H)
    vert[torch.arange(H - 1), torch.arange(1, H)] = 1  # vert @ x: x[r+1]
    out = []
    for d, (dy, dx) in enumerate(OFFS):
        x = conn[:, 7 - d]
        if dy == 1:
            x = vert @ x
        elif dy == -1:
            x = vert.t() @ x
        if dx == 1:
            x = x @ hori.t()
        elif dx == -1:
            x = x @ hori
        out.append(conn[:, d] * x)
    return torch.stack(out, 1)


def isolated(mask, dilations=(1, )):
    """Foreground pixels with no foreground neighbour at any offset."""
    B, K, H, W = mask.shape
    out = torch.zeros_like(mask)
    for b, k, y, x in zip(*torch.nonzero(mask, as_tuple=True)):
        has = False
        for dil in dilations:
            for dy, dx in OFFS:
                yy, xx = y + dil * dy, x + dil * dx
                if 0 <= yy < H and 0 <= xx < W and mask[b, k, yy, xx]:
                    has = True
        out[b, k, y, x] = 0 if has else 1
    return out


def ref_bce(p, t):
    p, t = p.double(), t.double()
    lp = torch.clamp(torch.log(p), min=-100)
    l1p = torch.clamp(torch.log(1 - p), min=-100)
    return -(t * lp + (1 - t) * l1p)


# --------------------------------------------------------------- labels
def test_offsets_constant():
    assert list(CONNECTIVITY_OFFSETS) == OFFS
    for d in range(8):  # channel 7 - d is the opposite direction
        assert OFFS[7 - d] == (-OFFS[d][0], -OFFS[d][1])


@pytest.mark.parametrize('dil', [1, 2, 3])
@pytest.mark.parametrize('d', range(8))
def test_hand_made_pair_per_direction_and_dilation(d, dil):
    """Two foreground pixels p and p + dil*o_d: exactly channel d at p and
    channel 7-d at the other end are 1, for dilations=(1, dil) layouts."""
    H, W = 9, 8
    y, x = 4, 4
    dy, dx = OFFS[d]
    mask = torch.zeros(1, 1, H, W)
    mask[0, 0, y, x] = 1
    mask[0, 0, y + dil * dy, x + dil * dx] = 1
    dils = (dil, ) if dil == 1 else (1, dil)
    j = dils.index(dil)
    conn = mask_to_connectivity(mask, dils)
    assert conn.shape == (1, 8 * len(dils), H, W)
    expected = torch.zeros_like(conn)
    expected[0, j * 8 + d, y, x] = 1
    expected[0, j * 8 + 7 - d, y + dil * dy, x + dil * dx] = 1
    assert torch.equal(conn, expected)
    # both ends confirm the link, so both pixels survive voting
    assert torch.equal(bilateral_voting(conn, dils), mask)
    # edge: both pixels have some but not all links
    assert torch.equal(connectivity_edge(conn, dils), mask)


def test_labels_match_loops_multiclass_batch_dilations():
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(2, 3, 7, 6, generator=g) > 0.45).float()
    for dils in [(1, ), (1, 2), (2, 1, 3)]:
        assert torch.equal(mask_to_connectivity(mask, dils),
                           loop_labels(mask, dils))


def test_layout_batch_and_class_blocks():
    """Channel (k*J + j)*8 + d equals the single-image, single-class,
    single-dilation result."""
    g = torch.Generator().manual_seed(1)
    mask = (torch.rand(3, 2, 6, 10, generator=g) > 0.5)
    dils = (1, 2)
    conn = mask_to_connectivity(mask, dils)
    assert conn.dtype == torch.float32 and conn.shape == (3, 32, 6, 10)
    for b in range(3):
        for k in range(2):
            for j, dil in enumerate(dils):
                one = mask_to_connectivity(mask[b:b + 1, k:k + 1], (dil, ))
                c0 = (k * 2 + j) * 8
                assert torch.equal(conn[b:b + 1, c0:c0 + 8], one)


def test_instance_links_do_not_cross_instances():
    ids = torch.zeros(1, 1, 4, 6, dtype=torch.long)
    ids[0, 0, :, 0:3] = 1
    ids[0, 0, :, 3:6] = 2  # touching instances
    conn = instance_to_connectivity(ids)
    fg = mask_to_connectivity((ids > 0).float())
    same = loop_labels((ids == 1).float()) + loop_labels((ids == 2).float())
    assert torch.equal(conn, same)
    assert not torch.equal(conn, fg)  # the plain mask links across
    assert conn[0, 4, 0, 2] == 0 and fg[0, 4, 0, 2] == 1  # right of col 2


# --------------------------------------------------------------- voting
def test_votes_match_loops_and_shift_matrices():
    g = torch.Generator().manual_seed(2)
    conn = torch.rand(2, 16, 5, 7, generator=g)
    assert torch.equal(connectivity_votes(conn, (1, 2)),
                       loop_votes(conn, (1, 2)))
    one = conn[:, :8]
    assert torch.equal(connectivity_votes(one), shift_matrix_votes(one))
    assert torch.equal(bilateral_voting(one),
                       shift_matrix_votes(one).amax(1, keepdim=True))
    # K = 2 blocks, max over directions and dilations
    v = loop_votes(conn, (1, 2)).reshape(2, 1, 16, 5, 7).amax(2)
    assert torch.equal(bilateral_voting(conn, (1, 2)), v)
    conn2 = torch.rand(3, 16, 6, 5, generator=g)  # K = 2, J = 1
    v2 = loop_votes(conn2).reshape(3, 2, 8, 6, 5).amax(2)
    assert torch.equal(bilateral_voting(conn2), v2)


def test_voting_negative_logits_and_grad():
    """Raw-logit voting (DconnNet multi-class) keeps the 0 outside the image
    and the product of two negatives; gradients flow."""
    g = torch.Generator().manual_seed(3)
    conn = torch.randn(1, 8, 4, 5, generator=g, requires_grad=True)
    out = bilateral_voting(conn)
    ref = loop_votes(conn.detach()).amax(1, keepdim=True)
    assert torch.equal(out.detach(), ref)
    out.sum().backward()
    assert conn.grad is not None and torch.isfinite(conn.grad).all()


@pytest.mark.parametrize('dils', [(1, ), (1, 2), (3, )])
def test_round_trip(dils):
    g = torch.Generator().manual_seed(4)
    for density in (0.1, 0.5, 0.9):
        mask = (torch.rand(2, 2, 11, 9, generator=g) < density).float()
        back = bilateral_voting(mask_to_connectivity(mask, dils), dils)
        assert torch.equal(back, mask - isolated(mask, dils))


def test_round_trip_blob_exact():
    mask = torch.zeros(1, 1, 12, 13)
    mask[0, 0, 2:9, 3:11] = 1
    mask[0, 0, 0, 12] = 1  # isolated corner pixel: dropped
    back = bilateral_voting(mask_to_connectivity(mask))
    expected = mask.clone()
    expected[0, 0, 0, 12] = 0
    assert torch.equal(back, expected)


def test_decode_modes():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 8, 6, 6, generator=g) * 3
    p = logits.sigmoid()
    assert torch.equal(connectivity_decode(logits, mode='soft'),
                       bilateral_voting(p))
    assert torch.equal(connectivity_decode(logits, mode='binary'),
                       bilateral_voting((p > 0.5).float()))
    assert torch.equal(connectivity_decode(logits, mode='multiclass'),
                       bilateral_voting(logits))
    with pytest.raises(ValueError, match='mode'):
        connectivity_decode(logits, mode='hard')


# ------------------------------------------------------- degenerate input
def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match='binary'):
        mask_to_connectivity(torch.full((1, 1, 3, 3), 0.5))
    with pytest.raises(ValueError, match='binary'):
        mask_to_connectivity(torch.full((1, 1, 3, 3), 255))
    with pytest.raises(ValueError, match=r'\(B, K, H, W\)'):
        mask_to_connectivity(torch.ones(3, 3))
    with pytest.raises(ValueError, match='multiple of 8'):
        bilateral_voting(torch.zeros(1, 7, 4, 4))
    with pytest.raises(ValueError, match='= 16'):
        bilateral_voting(torch.zeros(1, 8, 4, 4), dilations=(1, 2))
    with pytest.raises(ValueError, match='dilations'):
        mask_to_connectivity(torch.ones(1, 1, 3, 3), dilations=(0, ))
    with pytest.raises(ValueError, match='dilations'):
        bilateral_voting(torch.zeros(1, 8, 4, 4), dilations=())


def test_empty_mask_and_tiny_images_defined():
    empty = torch.zeros(2, 1, 5, 4)
    conn = mask_to_connectivity(empty)
    assert conn.abs().sum() == 0
    assert bilateral_voting(conn).abs().sum() == 0
    assert connectivity_edge(conn).abs().sum() == 0
    # 1x1 image: no neighbour inside the image, so no links, voted map 0
    one = mask_to_connectivity(torch.ones(1, 1, 1, 1))
    assert one.shape == (1, 8, 1, 1) and one.sum() == 0
    assert bilateral_voting(one).sum() == 0
    # image smaller than the dilation: links at that dilation are all 0
    small = torch.ones(1, 1, 2, 2)
    c = mask_to_connectivity(small, (1, 3))
    assert c[:, 8:].sum() == 0 and c[:, :8].sum() == 12
    assert torch.equal(bilateral_voting(c, (1, 3)), small)
    # losses on an empty mask are finite, with finite gradients
    logits = torch.randn(2, 8, 5, 4, requires_grad=True)
    for fn in (bicon_loss, dconn_loss):
        loss = fn(logits, empty)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_saturated_logits_no_nan():
    logits = torch.full((1, 8, 6, 6), -300.0)
    logits[:, :, 1:5, 1:5] = 300.0
    logits.requires_grad_(True)
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., 2:4, 2:4] = 1
    for fn in (bicon_loss, dconn_loss):
        loss = fn(logits, mask)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_autocast_bf16_finite():
    logits = torch.randn(2, 8, 8, 8, requires_grad=True)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = bicon_loss(logits * 1.0, mask)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


# ---------------------------------------------------------------- losses
def ref_terms_single(logits, mask, smooth, dice_cols=False, edge_norm='all'):
    """Re-statement of the one-class BiconNet / DconnNet terms."""
    p = logits.double().sigmoid()
    conn = loop_labels(mask).double()
    v = pad_votes(p)
    f = v.amax(1, keepdim=True)
    m = mask.double()
    if dice_cols:
        dims = (1, 2)
    else:
        dims = (2, 3)
    dice = 1 - (2 * (f * m).sum(dims) + smooth) / (m.sum(dims) + f.sum(dims)
                                                   + smooth)
    s = conn.sum(1, keepdim=True)
    edge = ((s > 0) & (s < 8)).double()
    vmin = v.amin(1, keepdim=True) * edge
    e = ref_bce(vmin, torch.zeros_like(vmin))
    if edge_norm == 'all':
        edge_l = e.mean()
    elif edge_norm == 'edge':
        edge_l = e.sum() / max(edge.sum().item(), 1)
    else:
        edge_l = e.sum() / vmin.sum()
    return dict(conn=ref_bce(p, conn).mean(), vote=ref_bce(v, conn).mean(),
                bce=ref_bce(f, m).mean(), dice=dice.mean(), edge=edge_l)


def _case(seed=6, B=2, H=9, W=7):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, 8, H, W, generator=g) * 2
    mask = torch.zeros(B, 1, H, W)
    mask[0, 0, 2:7, 1:5] = 1
    if B > 1:
        mask[1, 0, 0:4, 3:7] = 1
    return logits, mask


def _close(a, b):
    return math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-6)


def test_bicon_loss_matches_restatement():
    logits, mask = _case()
    for faithful in (False, True):
        ref = ref_terms_single(logits, mask, 1e-3, dice_cols=faithful)
        got = connectivity_loss_terms(logits, mask, 'bicon',
                                      faithful=faithful)
        for k in ref:
            assert _close(got[k], ref[k]), (k, got[k], ref[k])
        total = (0.8 * ref['conn'] + ref['edge'] + 0.2 * ref['vote'] +
                 ref['bce'] + ref['dice'])
        assert _close(bicon_loss(logits, mask, faithful=faithful), total)
    # the faithful per-column Dice really differs
    a = connectivity_loss_terms(logits, mask, 'bicon')['dice']
    b = connectivity_loss_terms(logits, mask, 'bicon', faithful=True)['dice']
    assert not _close(a, b)


def test_dconn_loss_matches_restatement():
    logits, mask = _case(7)
    ref = ref_terms_single(logits, mask, 1e-4, edge_norm='edge')
    got = connectivity_loss_terms(logits, mask, 'dconn')
    for k in ref:
        assert _close(got[k], ref[k]), (k, got[k], ref[k])
    total = ref['bce'] + ref['conn'] + ref['edge'] + ref['dice'] + \
        0.2 * ref['vote']
    assert _close(dconn_loss(logits, mask), total)
    assert _close(dconn_loss(logits, mask, bicon_term=False),
                  total - 0.2 * ref['vote'])
    ref_f = ref_terms_single(logits, mask, 1e-4, edge_norm='pred')
    got_f = connectivity_loss_terms(logits, mask, 'dconn', faithful=True)
    assert _close(got_f['edge'], ref_f['edge'])
    assert not _close(got_f['edge'], got['edge'])
    # custom weights
    w = dict(conn=2.0, vote=0.0, bce=0.5, dice=0.0, edge=3.0)
    assert _close(dconn_loss(logits, mask, weights=w),
                  2 * ref['conn'] + 0.5 * ref['bce'] + 3 * ref['edge'])


def test_dconn_multiclass_matches_restatement():
    g = torch.Generator().manual_seed(8)
    K, H, W = 3, 6, 7
    logits = torch.randn(2, 8 * K, H, W, generator=g)
    labels = torch.randint(0, K, (2, H, W), generator=g)
    onehot = torch.nn.functional.one_hot(labels, K).permute(0, 3, 1,
                                                            2).double()
    conn = loop_labels(onehot).double()
    raw_v = pad_votes(logits.double())
    final_raw = raw_v.reshape(2, K, 8, H, W).amax(2)
    v = pad_votes(logits.double().sigmoid())
    s = conn.reshape(2, K, 8, H, W).sum(2)
    edge = ((s > 0) & (s < 8)).double()
    vmin = raw_v.sigmoid().reshape(2, K, 8, H, W).amin(2) * edge
    edge_l = ref_bce(vmin, torch.zeros_like(vmin)).sum() / edge.sum()
    sm = final_raw.softmax(1)
    dice = 0
    for j in range(1, K):
        inter = (sm[:, j] * onehot[:, j]).sum((1, 2))
        dice = dice + (1 - (2 * inter + 1e-4) /
                       (onehot[:, j].sum((1, 2)) + sm[:, j].sum(
                           (1, 2)) + 1e-4)).mean()
    ref = dict(ce=torch.nn.functional.cross_entropy(final_raw, labels),
               conn=ref_bce(logits.double().sigmoid(), conn).mean(),
               vote=ref_bce(v, conn).mean(), edge=edge_l, dice=dice)
    got = connectivity_loss_terms(logits, labels, 'dconn_multiclass')
    assert set(got) == set(ref)
    for k in ref:
        assert _close(got[k], ref[k]), (k, got[k], ref[k])
    total = ref['ce'] + ref['conn'] + ref['edge'] + 0.2 * ref['vote'] + \
        ref['dice']
    assert _close(dconn_loss(logits, labels, multiclass=True), total)


def test_ignore_pixels_zero_weight_links():
    """Links touching a 255 pixel get weight 0; other links are unchanged."""
    logits, mask = _case(9, B=1)
    target = mask.clone()
    target[0, 0, 4, 3] = 255
    got = connectivity_loss_terms(logits, target, 'bicon')
    p = logits.double().sigmoid()
    clean = mask.clone()
    clean[0, 0, 4, 3] = 0
    conn = loop_labels(clean).double()
    valid = torch.ones(1, 1, 9, 7, dtype=torch.double)
    valid[0, 0, 4, 3] = 0
    w = torch.ones_like(conn)
    for d, (dy, dx) in enumerate(OFFS):
        w[0, d, 4, 3] = 0
        y, x = 4 - dy, 3 - dx  # the pixel whose link d ends at (4, 3)
        w[0, d, y, x] = 0
    ref_conn = (ref_bce(p, conn) * w).sum() / w.sum()
    assert _close(got['conn'], ref_conn)
    f = pad_votes(p).amax(1, keepdim=True)
    ref_b = (ref_bce(f, clean.double()) * valid).sum() / valid.sum()
    assert _close(got['bce'], ref_b)
    with pytest.raises(ValueError, match='binary'):
        connectivity_loss_terms(logits, target, 'bicon', ignore_index=None)


def test_loss_input_checks():
    logits, mask = _case()
    with pytest.raises(ValueError, match='label size'):
        bicon_loss(logits, mask[..., :5, :])
    with pytest.raises(ValueError, match='multiple of 8'):
        bicon_loss(logits[:, :7], mask)
    with pytest.raises(ValueError, match='variant'):
        connectivity_loss_terms(logits, mask, 'connnet')


def test_bce_and_dice_helpers():
    p = torch.tensor([0.0, 0.3, 1.0])
    t = torch.tensor([0.0, 1.0, 0.0])
    assert torch.allclose(bce_on_probs(p, t, reduction='none'),
                          ref_bce(p, t).float())
    w = torch.tensor([1.0, 0.0, 1.0])
    assert _close(bce_on_probs(p, t, w), (ref_bce(p, t) * w).sum() / 2)
    pred = torch.tensor([[[[0.5, 1.0], [0.0, 0.0]]]])
    tgt = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert _close(soft_dice_loss(pred, tgt, 0.0), 1 - 3 / 3.5)


# -------------------------------------------------------- instance split
def test_split_instances_touching_and_separate():
    ids = torch.zeros(1, 1, 10, 12, dtype=torch.long)
    ids[0, 0, 1:5, 1:6] = 1
    ids[0, 0, 1:5, 6:10] = 2  # touches instance 1
    ids[0, 0, 7:9, 2:11] = 3  # separate
    conn = instance_to_connectivity(ids)
    labels, scores = split_instances(conn)
    assert labels.max() == 3 and scores.shape == (3, )
    np.testing.assert_array_equal(labels, ids[0, 0].numpy())
    assert np.allclose(scores, 1.0)
    # with plain (instance-unaware) links the touching pair merges
    merged, _ = split_instances(mask_to_connectivity((ids > 0).float()))
    assert merged.max() == 2


def test_split_instances_weak_bridge_and_fill():
    """A weak bridge between two blobs is cut by a stricter link threshold;
    the bridge pixels go to the nearest kept instance."""
    mask = torch.zeros(1, 1, 7, 13)
    mask[0, 0, 1:6, 1:5] = 1
    mask[0, 0, 1:6, 8:12] = 1
    mask[0, 0, 3, 5:8] = 1  # one-pixel-wide bridge
    prob = mask_to_connectivity(mask) * 0.95
    bridge = torch.zeros(7, 13, dtype=torch.bool)
    bridge[3, 4:9] = True
    prob[0, :, bridge] *= 0.8  # links at the bridge: votes ~0.58
    labels, _ = split_instances(prob, 0.5, 0.5)
    assert labels.max() == 1
    labels, _ = split_instances(prob, 0.5, 0.7)
    assert labels.max() == 2
    assert (labels[mask[0, 0].numpy() > 0] > 0).all()  # all filled
    assert labels[3, 5] == 1 and labels[3, 7] == 2
    labels, _ = split_instances(prob, 0.5, 0.7, fill_unassigned=False)
    assert labels[3, 6] == 0
    # min_area drops small components
    labels, _ = split_instances(prob, 0.5, 0.7, min_area=100)
    assert labels.max() == 0


def test_split_instances_empty():
    labels, scores = split_instances(torch.zeros(8, 5, 5))
    assert labels.max() == 0 and scores.shape == (0, )
