"""TokenCut's normalised cut, box, CorLoc and bilateral solver (functional).

Reference behaviour is re-stated independently in this file (dense matrices
built with loops, the full generalised eigen-decomposition, hand-made boxes)
and compared with vtseg.functional.normalized_cut.
"""
import itertools

import numpy as np
import pytest
import scipy.linalg
import torch

from vtseg.functional import bilateral_solver as bs
from vtseg.functional import corloc, ncut, ncut_box
from vtseg.functional import normalized_cut as nc


# ------------------------------------------------------------------ helpers
def planted(h, w, mask, noise=0.3, dim=32, seed=0, dtype=np.float32):
    """Background / object prototype features plus noise."""
    rng = np.random.default_rng(seed)
    bg, fg = rng.standard_normal((2, dim))
    f = np.where(mask.reshape(-1, 1), fg, bg)
    f = f + noise * rng.standard_normal(f.shape)
    return f.astype(dtype)


def reference_cut(feats, tau=0.2, eps=1e-5, binary=True):
    """Straightforward statement of docs/methods/tokencut.md#image-mode
    steps 3-6: loops for the graph, the full generalised
    eigen-decomposition."""
    f = np.asarray(feats, np.float64)
    n = len(f)
    z = f / np.linalg.norm(f, axis=1, keepdims=True)
    W = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            a = float(z[i] @ z[j])
            if binary:
                W[i, j] = 1.0 if a > tau else eps
            else:
                W[i, j] = a if a >= tau else eps
    D = np.diag(W.sum(1))
    _, vecs = scipy.linalg.eigh(D - W, D)
    y = vecs[:, 1]
    part = y > y.mean()
    s = int(np.argmax(np.abs(y)))
    if not part[s]:
        part, y = ~part, -y
    return part, y, s


def same_up_to_sign(a, b, atol=1e-6):
    a, b = np.ravel(a), np.ravel(b)
    return np.allclose(a, b, atol=atol) or np.allclose(a, -b, atol=atol)


# ---------------------------------------------------------------- ncut core
@pytest.mark.parametrize('solver', ['dense', 'arpack', 'lobpcg', 'auto'])
def test_planted_object_recovered_exactly(solver):
    h, w = 9, 11
    mask = np.zeros((h, w), bool)
    mask[2:6, 3:8] = True
    feats = planted(h, w, mask)
    part, vec, seed = ncut(feats, (h, w), solver=solver)
    assert part.dtype == bool and part.shape == (h, w)
    assert vec.shape == (h, w)
    np.testing.assert_array_equal(part, mask)
    assert mask.flat[seed]
    # sign convention: the seed is in the partition, the partition is the
    # part above the mean of the (sign-corrected) eigenvector
    assert part.flat[seed]
    np.testing.assert_array_equal(part, vec > vec.mean())
    assert abs(vec.flat[seed]) == pytest.approx(np.abs(vec).max())


def test_matches_reference_statement():
    h, w = 6, 7
    mask = np.zeros((h, w), bool)
    mask[1:4, 4:7] = True
    feats = planted(h, w, mask, noise=0.9, seed=3)
    for binary in (True, False):
        ref_part, ref_vec, ref_seed = reference_cut(feats, binary=binary)
        part, vec, seed = ncut(feats, (h, w), binary_graph=binary,
                               solver='dense')
        np.testing.assert_array_equal(part.ravel(), ref_part)
        np.testing.assert_allclose(vec.ravel(), ref_vec, atol=1e-8)
        assert seed == ref_seed


def test_eigvec_is_d_normalised_generalised_eigenvector():
    h, w = 8, 8
    mask = np.zeros((h, w), bool)
    mask[:3] = True
    feats = planted(h, w, mask, noise=0.8)
    W = nc.ncut_affinity(feats)
    d = W.sum(1)
    for solver in ('dense', 'arpack', 'lobpcg'):
        lam, x = nc.fiedler_vector(W, solver)
        assert x @ (d * x) == pytest.approx(1.0, rel=1e-8)
        np.testing.assert_allclose((np.diag(d) - W) @ x, lam * d * x,
                                   atol=1e-8)


def test_sign_convention_flips_partition_and_vector():
    # the object is the minority with the most extreme entries: whatever
    # sign the solver returns, the seed ends up inside the partition
    h, w = 10, 10
    mask = np.zeros((h, w), bool)
    mask[6:9, 1:4] = True
    feats = planted(h, w, mask, seed=5)
    results = [ncut(feats, (h, w), solver=s) for s in ('dense', 'arpack')]
    for part, vec, seed in results:
        assert part.flat[seed] and vec.flat[seed] > vec.mean()
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-7)


@pytest.mark.parametrize('trial', range(3))
def test_dense_and_fast_solvers_give_the_same_bipartition(trial):
    # random but structured: a few clusters of random discs, noisy,
    # 16 x 20 = 320 tokens (the fast path, not the small-graph dense one)
    rng = np.random.default_rng(100 + trial)
    h, w = 16, 20
    yy, xx = np.mgrid[:h, :w]
    labels = np.zeros((h, w), int)
    for k in range(1, 4):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(3, 7)
        labels[(yy - cy)**2 + (xx - cx)**2 < r * r] = k
    protos = rng.standard_normal((4, 48))
    feats = protos[labels.ravel()] + rng.uniform(0.4, 1.0) * \
        rng.standard_normal((h * w, 48))
    dense = ncut(feats.astype(np.float32), (h, w), solver='dense')
    for solver in ('auto', 'arpack', 'lobpcg'):
        fast = ncut(feats.astype(np.float32), (h, w), solver=solver)
        np.testing.assert_array_equal(fast[0], dense[0])
        assert same_up_to_sign(fast[1], dense[1], atol=1e-7)


def test_all_identical_features_give_a_defined_result():
    feats = np.tile(np.arange(1, 9, dtype=np.float32), (20, 1))
    for solver in nc.NCUT_SOLVERS:
        part, vec, seed = ncut(feats, (4, 5), solver=solver)
        assert part.all() and seed == 0 and not vec.any()
    box, comp = ncut_box(part, seed, 16, (60, 75))
    np.testing.assert_array_equal(box, [0, 0, 75, 60])
    assert comp.all()
    # tau >= 1: every pair is a non-edge, also uniform
    part, vec, seed = ncut(feats, (4, 5), tau=1.5)
    assert part.all() and not vec.any()


def test_bad_inputs_raise_clear_errors():
    f = np.random.default_rng(0).standard_normal((12, 4)).astype(np.float32)
    bad = f.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        ncut(bad, (3, 4))
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match='NaN or inf'):
        ncut(torch.from_numpy(bad), (3, 4))
    with pytest.raises(ValueError, match='at least 2 tokens'):
        ncut(f[:1], (1, 1))
    with pytest.raises(ValueError, match='does not match'):
        ncut(f, (3, 5))
    with pytest.raises(ValueError, match=r'\(N, C\)'):
        ncut(f[None], (3, 4))
    with pytest.raises(ValueError, match='solver'):
        ncut(f, (3, 4), solver='magic')


def test_torch_in_torch_out_numpy_in_numpy_out():
    h, w = 5, 6
    mask = np.zeros((h, w), bool)
    mask[1:3, 1:4] = True
    f = planted(h, w, mask)
    part, vec, seed = ncut(torch.from_numpy(f), (h, w))
    assert isinstance(part, torch.Tensor) and part.dtype == torch.bool
    assert isinstance(vec, torch.Tensor) and isinstance(seed, int)
    part_np, vec_np, _ = ncut(f, (h, w))
    assert isinstance(part_np, np.ndarray)
    np.testing.assert_array_equal(part.numpy(), part_np)


def test_fiedler_sparse_with_rank_one_equals_dense():
    rng = np.random.default_rng(1)
    n = 300
    g = (rng.random((n, n)) < 0.05).astype(float)
    g[:100, :100] = rng.random((100, 100)) < 0.4
    g = np.maximum(g, g.T)
    np.fill_diagonal(g, 1)
    from scipy import sparse
    lam_d, x_d = nc.fiedler_vector(g + 1e-3, 'dense')
    lam_s, x_s = nc.fiedler_vector(sparse.csr_matrix(g), 'arpack',
                                   rank_one=1e-3)
    assert lam_s == pytest.approx(lam_d, abs=1e-9)
    assert same_up_to_sign(x_s, x_d, atol=1e-8)


# --------------------------------------------------------------------- box
def test_ncut_box_hand_cases():
    part = np.zeros((5, 6), bool)
    part[1:3, 1:3] = True  # component A: rows 1-2, cols 1-2
    part[3, 3] = True  # touches A only diagonally: separate (4-connectivity)
    part[0:5, 5] = True  # component B: the last column
    seed_a = 1 * 6 + 2
    box, comp = ncut_box(part, seed_a, 16, (80, 96))
    np.testing.assert_array_equal(box, [16, 16, 48, 48])
    expected = np.zeros_like(part)
    expected[1:3, 1:3] = True
    np.testing.assert_array_equal(comp, expected)
    # B, clipped to an unpadded image of 70 x 90 pixels
    box, comp = ncut_box(part, 4 * 6 + 5, 16, (70, 90))
    np.testing.assert_array_equal(box, [80, 0, 90, 70])
    assert comp.sum() == 5
    # rectangular patches and no clipping
    box, _ = ncut_box(part, 3 * 6 + 3, (8, 4), None)
    np.testing.assert_array_equal(box, [12, 24, 16, 32])
    # torch in, torch out
    tbox, tcomp = ncut_box(torch.from_numpy(part), seed_a, 16, (80, 96))
    assert isinstance(tbox, torch.Tensor) and tcomp.dtype == torch.bool


def test_ncut_box_rejects_seed_outside():
    part = np.zeros((3, 3), bool)
    part[0, 0] = True
    with pytest.raises(ValueError, match='not in the bipartition'):
        ncut_box(part, 4, 16)
    with pytest.raises(ValueError, match='outside'):
        ncut_box(part, 9, 16)


# ------------------------------------------------------------------ CorLoc
def test_corloc_iou_hand_values():
    box = [0, 0, 10, 10]
    gts = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30],
                    [0, 0, 10, 20]])
    iou = nc.corloc_iou(box, gts)
    np.testing.assert_allclose(iou, [100 / (100 + 1e-7), 50 / (150 + 1e-7),
                                     0.0, 100 / (200 + 1e-7)])
    # faithful: 1e-7 added to each height (yolov5 helper)
    f = nc.corloc_iou(box, gts[:1], faithful=True)
    a = 10 * (10 + 1e-7)
    np.testing.assert_allclose(f, [100 / (2 * a - 100 + 1e-7)])


def test_corloc_hand_cases():
    preds = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10],
             [100, 100, 110, 110]]
    gts = [
        np.array([[50, 50, 60, 60], [0, 0, 10, 12]]),  # 2nd gt hits
        np.array([[0, 0, 10, 20]]),  # IoU exactly 0.5 (minus 1e-7): miss
        np.zeros((0, 4)),  # no ground truth: miss
        np.array([[100, 100, 110, 110]]),
    ]
    assert corloc(preds, gts) == pytest.approx(0.5)
    # threshold exactly met: IoU 0.5 needs >= 0.5 -> 10x20 vs 10x19
    assert corloc([[0, 0, 10, 10]], [np.array([[0, 0, 10, 19]])]) == 1.0
    assert corloc([], []) == 0.0
    with pytest.raises(ValueError, match='ground-truth'):
        corloc(preds, gts[:2])


def test_centered_box():
    np.testing.assert_array_equal(nc.centered_box((100, 200)),
                                  [50, 25, 150, 75])


# -------------------------------------------------------- several objects
def two_objects(h=12, w=16):
    mask = np.zeros((h, w), int)
    mask[1:5, 1:6] = 1
    mask[7:11, 9:15] = 2
    rng = np.random.default_rng(7)
    protos = rng.standard_normal((3, 32))
    f = protos[mask.ravel()] + 0.3 * rng.standard_normal((h * w, 32))
    return f.astype(np.float32), mask


def test_ncut_multi_recursive_finds_both_objects():
    f, mask = two_objects()
    objs = nc.ncut_multi(f, mask.shape, max_objects=4, mode='recursive')
    assert len(objs) >= 2
    found = {tuple(np.unique(mask[o['mask']])) for o in objs[:2]}
    assert found == {(1, ), (2, )}
    first = ncut(f, mask.shape)
    np.testing.assert_array_equal(
        objs[0]['mask'], ncut_box(first[0], first[2], 1)[1])
    for o in objs:
        assert 0 <= o['score'] <= 1 and o['mask'].flat[o['seed']]


def test_ncut_multi_components_seed_first():
    f, mask = two_objects()
    part, vec, seed = ncut(f, mask.shape)
    objs = nc.ncut_multi(f, mask.shape, max_objects=5, mode='components')
    assert objs[0]['mask'].flat[seed]
    total = np.zeros(mask.shape, bool)
    for o in objs:
        assert not (total & o['mask']).any()
        total |= o['mask']
    np.testing.assert_array_equal(total, part)
    scores = [o['score'] for o in objs[1:]]
    assert scores == sorted(scores, reverse=True)


def test_ncut_multi_stops_on_uniform_remainder():
    # one object on a perfectly uniform background: after removing it the
    # remaining graph is uniform, the rule stops with a single object
    h, w = 6, 6
    mask = np.zeros((h, w), bool)
    mask[2:4, 2:4] = True
    f = np.where(mask.reshape(-1, 1), 1.0, 0.0) * np.eye(2)[0] + \
        np.where(mask.reshape(-1, 1), 0.0, 1.0) * np.eye(2)[1]
    objs = nc.ncut_multi(f.astype(np.float32), (h, w), max_objects=3)
    assert len(objs) == 1
    np.testing.assert_array_equal(objs[0]['mask'], mask)


# -------------------------------------------------------------------- video
def moving_square(T=6, h=10, w=12, noise=0.3):
    rng = np.random.default_rng(11)
    bg, fg = rng.standard_normal((2, 24))
    masks = np.zeros((T, h, w), bool)
    for t in range(T):
        masks[t, 3:7, 1 + t:5 + t] = True
    f = np.where(masks.reshape(T, -1, 1), fg, bg)
    f = f + noise * rng.standard_normal(f.shape)
    return f.astype(np.float32), masks


@pytest.mark.parametrize('opts', [
    dict(), dict(edges_per_token=60), dict(faithful=True), dict(max_frames=4),
    dict(block_rows=37), dict(solver='lobpcg')
])
def test_ncut_video_recovers_moving_object(opts):
    f, masks = moving_square()
    fg, vec = nc.ncut_video(f, masks.shape[1:], **opts)
    assert fg.shape == masks.shape and vec.shape == masks.shape
    np.testing.assert_array_equal(fg, masks)


def test_ncut_video_flow_and_errors():
    f, masks = moving_square()
    rng = np.random.default_rng(0)
    flow = rng.standard_normal(f.shape).astype(np.float32)
    flow[masks.reshape(masks.shape[0], -1)] += 5.0
    fg, _ = nc.ncut_video(f, masks.shape[1:], flow_feats=flow, alpha=0.5)
    np.testing.assert_array_equal(fg, masks)
    with pytest.raises(ValueError, match='no frames'):
        nc.ncut_video(np.zeros((0, 120, 24), np.float32), (10, 12))
    bad = f.copy()
    bad[2, 5, 0] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        nc.ncut_video(bad, (10, 12))
    with pytest.raises(ValueError, match='flow'):
        nc.ncut_video(f, (10, 12), flow_feats=flow[:3])


def test_video_graph_matches_dense_threshold():
    f, _ = moving_square(T=3)
    z = f.reshape(-1, f.shape[-1])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    g = nc.build_video_graph(z, tau=0.3, block_rows=50)
    np.testing.assert_array_equal(g.toarray() > 0, z @ z.T > 0.3)
    assert (g.data == 1).all()


def test_video_graph_edge_sampling_is_unbiased_and_symmetric():
    f, _ = moving_square(T=6)
    z = f.reshape(-1, f.shape[-1])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    full = (z @ z.T > 0.3).astype(float)
    m = len(z)
    degs = []
    for seed in range(20):
        g = nc.build_video_graph(z, tau=0.3, edges_per_token=40, seed=seed)
        d = g.toarray()
        assert (d == d.T).all() and (np.diag(d) == 1).all()
        assert ((d > 0) <= (full > 0)).all()  # only true edges
        assert g.nnz < 0.5 * full.sum()
        degs.append(d.sum(1))
    # degrees are preserved in expectation
    rel = np.abs(np.mean(degs, 0) - full.sum(1)) / full.sum(1)
    assert rel.mean() < 0.05 and m == 720


# ---------------------------------------------------------- bilateral solver
def bs_reference(img, target, conf, ss, sl, sc, lam):
    """Independent dense statement of the fast bilateral solver: vertices as
    tuples, blur by neighbour lookup, exact linear solve."""
    h, w = target.shape
    yuv = bs.rgb_to_yuv(img)
    verts, idx = {}, []
    for y, x in itertools.product(range(h), range(w)):
        key = (int(x / ss), int(y / ss), int(yuv[y, x, 0] / sl),
               int(yuv[y, x, 1] / sc), int(yuv[y, x, 2] / sc))
        idx.append(verts.setdefault(key, len(verts)))
    V, P = len(verts), h * w
    S = np.zeros((V, P))
    S[idx, np.arange(P)] = 1
    B = 10 * np.eye(V)
    for key, i in verts.items():
        for d in range(5):
            for off in (-1, 1):
                nb = list(key)
                nb[d] += off
                j = verts.get(tuple(nb))
                if j is not None:
                    B[i, j] += 1
    m = S.sum(1)
    n = np.ones(V)
    for _ in range(10):
        n = np.sqrt(n * m / (B @ n))
    m = n * (B @ n)
    A = lam * (np.diag(m) - np.diag(n) @ B @ np.diag(n)) + np.diag(S @ conf)
    y = np.linalg.solve(A, S @ (conf * target.ravel()))
    return (S.T @ y).reshape(h, w)


def test_bilateral_solver_matches_dense_statement():
    rng = np.random.default_rng(4)
    img = np.zeros((9, 11, 3), np.uint8)
    img[:, 6:] = (200, 40, 40)
    img = np.clip(img + rng.integers(0, 30, img.shape), 0, 255)
    target = np.zeros((9, 11))
    target[2:7, 4:9] = 1.0
    conf = np.full(99, 0.999)
    ref = bs_reference(img, target, conf, 4, 16, 8, 256.0)
    out = bs.bilateral_solve(img, target, 0.999, 4, 16, 8, 256.0,
                             cg_tol=1e-12, cg_maxiter=1000)
    np.testing.assert_allclose(out, ref, atol=1e-8)
    # TokenCut's settings (25 CG iterations) stay close to the exact solve
    out25 = bs.bilateral_solve(img, target, 0.999, 4, 16, 8)
    assert np.abs(out25 - ref).max() < 1e-2


def test_bilateral_solver_constant_and_errors():
    img = np.full((8, 8, 3), 120, np.uint8)
    out = bs.bilateral_solve(img, np.ones((8, 8)))
    np.testing.assert_allclose(out, 1.0, atol=1e-6)
    with pytest.raises(ValueError, match='differs'):
        bs.bilateral_solve(img, np.ones((7, 8)))
    clean = bs.clean_binary_mask(np.pad(np.ones((3, 3)), 2) * 0.9)
    assert clean.sum() == 9
