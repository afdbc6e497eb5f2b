"""Expedit operators against straightforward re-statements written here.

The references below loop over tokens and clusters and follow
docs/methods/expedit.md (clustering and reconstruction steps) literally
(pooling bins, integer legacy-nearest cells, +1e16 on forbidden pairs,
softmax over clusters, top-k with ties, row L2 norm).
"""
import math

import pytest
import torch

from vtseg.functional import (apply_reconstruction, cluster_flops,
                              cluster_hard_labels, cluster_token_sequence,
                              cluster_tokens, cluster_tokens_with_metric,
                              clustering_outliers, keep_unclustered,
                              reconstruct_flops, reconstruct_tokens,
                              reconstruction_weights, resolve_cluster_grid,
                              window_candidates)
import vtseg.functional.expedit as expedit_mod


# --------------------------------------------------------------- references
def ref_pool(img, h, w):
    """Adaptive average pooling with PyTorch's bins, by loops.
    img (C, H, W) -> (h*w, C)."""
    C, H, W = img.shape
    out = []
    for i in range(h):
        r0, r1 = (i * H) // h, -(-((i + 1) * H) // h)
        for j in range(w):
            c0, c1 = (j * W) // w, -(-((j + 1) * W) // w)
            out.append(img[:, r0:r1, c0:c1].reshape(C, -1).mean(1))
    return torch.stack(out)


def ref_allowed(H, W, h, w, window):
    """allowed[t][m]: token t may join cluster m."""
    r = window // 2
    allowed = []
    for ti in range(H):
        ci = (ti * h) // H  # legacy nearest, integer form
        for tj in range(W):
            cj = (tj * w) // W
            allowed.append([
                abs(ci - m // w) <= r and abs(cj - m % w) <= r
                for m in range(h * w)
            ])
    return allowed


def ref_cluster(x, grid, n_iters, temperature, window, masked_labels):
    """One image at a time, loops over tokens and clusters.
    x (B, C, H, W) -> centres (B, M, C), labels (B, N)."""
    B, C, H, W = x.shape
    h, w = grid
    M, N = h * w, H * W
    allowed = ref_allowed(H, W, h, w, window)
    all_centres, all_labels = [], []
    for b in range(B):
        toks = [x[b, :, t // W, t % W] for t in range(N)]
        centres = list(ref_pool(x[b], h, w))
        for _ in range(n_iters):
            A = [[None] * N for _ in range(M)]
            for t in range(N):
                d = []
                for m in range(M):
                    c = centres[m].detach()
                    xt = toks[t].detach()
                    dist = (xt * xt).sum() + (c * c).sum() - 2 * (c * xt).sum()
                    if not allowed[t][m]:
                        dist = dist + 1e16
                    d.append(-dist * temperature)
                a = torch.softmax(torch.stack(d), 0)
                for m in range(M):
                    A[m][t] = a[m]
            new = []
            for m in range(M):
                s = sum(A[m][t] for t in range(N))
                num = sum(A[m][t] * toks[t] for t in range(N))
                new.append(num / max(float(s), 1e-16))
            centres = new
        labels = []
        for t in range(N):
            best, best_d = None, None
            for m in range(M):
                if masked_labels and not allowed[t][m]:
                    continue
                c, xt = centres[m].detach(), toks[t].detach()
                dist = float((xt * xt).sum() + (c * c).sum() -
                             2 * (c * xt).sum())
                if best_d is None or dist < best_d:
                    best, best_d = m, dist
            labels.append(best)
        all_centres.append(torch.stack(centres))
        all_labels.append(torch.tensor(labels))
    return torch.stack(all_centres), torch.stack(all_labels)


def ref_reconstruct(x_low, fb, fa, k, temperature, clamp=False,
                    shift=False, sq=None):
    """Loops over tokens; ``sq`` overrides the squared distances."""
    B, M, C = x_low.shape
    N = fb.shape[1]
    out = torch.zeros(B, N, C, dtype=x_low.dtype)
    rows = []
    for b in range(B):
        for n in range(N):
            s = []
            for m in range(M):
                if sq is not None:
                    d = sq[b, n, m]
                else:
                    f, c = fb[b, n], fa[b, m]
                    d = (f * f).sum() + (c * c).sum() - 2 * (f * c).sum()
                if clamp:
                    d = d.clamp(min=0)
                s.append(d)
            s = torch.stack(s)
            if shift:
                s = s - s.min().detach()
            wgt = torch.exp(-temperature * s)
            if k >= 0:
                kth = sorted(wgt.tolist(), reverse=True)[k - 1]
                keep = torch.tensor([v >= kth for v in wgt.tolist()])
                wgt = torch.where(keep, wgt, torch.zeros_like(wgt))
            rows.append((b, n, wgt / wgt.norm().clamp(min=1e-12)))
    for b, n, wgt in rows:
        out[b, n] = sum(wgt[m] * x_low[b, m] for m in range(M))
    return out


def close(a, b, rtol=1e-5, atol=1e-6):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- clustering
@pytest.mark.parametrize('grid,window,temperature,n_iters', [
    ((3, 4), 3, 0.5, 3),     # non-square grid and tokens, local window
    ((3, 4), 9, 0.5, 3),     # window covering every cluster
    ((2, 3), 1, 1.0, 3),     # window 1: only the initial cell
    ((3, 4), 3, 0.02, 3),    # paper temperature
    ((7, 9), 5, 0.3, 1),     # one cluster per token
])
def test_cluster_matches_loop_reference(grid, window, temperature, n_iters):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 9, dtype=torch.float64)  # batch > 1
    for faithful in (False, True):
        centres, labels = cluster_tokens(x, grid, n_iters=n_iters,
                                         temperature=temperature,
                                         window_size=window,
                                         faithful=faithful)
        ref_c, ref_l = ref_cluster(x, grid, n_iters, temperature, window,
                                   masked_labels=not faithful)
        assert centres.shape == (2, grid[0] * grid[1], 5)
        assert labels.dtype == torch.int64 and labels.shape == (2, 63)
        close(centres, ref_c)
        assert torch.equal(labels, ref_l)


def test_cluster_fp32_matches_reference():
    torch.manual_seed(1)
    x = torch.randn(3, 6, 6, 5)
    centres, labels = cluster_tokens(x, (4, 3), n_iters=5, temperature=0.3,
                                     window_size=3)
    ref_c, ref_l = ref_cluster(x.double(), (4, 3), 5, 0.3, 3, True)
    close(centres, ref_c.float())
    assert torch.equal(labels, ref_l)


def test_cluster_zero_temperature_uses_all_clusters():
    # t = 0: the reference's (D + 1e16) * 0 = 0 gives uniform weights over
    # *all* clusters, forbidden ones included (dense path).
    torch.manual_seed(2)
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    centres, _ = cluster_tokens(x, (3, 3), n_iters=2, temperature=0.0,
                                window_size=1)
    mean = x.flatten(2).mean(2)
    close(centres, mean[:, None].expand(-1, 9, -1))
    ref_c, _ = ref_cluster(x, (3, 3), 2, 0.0, 1, True)
    close(centres, ref_c)


def test_cluster_no_iterations_is_pooling():
    x = torch.randn(2, 4, 8, 6)
    centres, _ = cluster_tokens(x, (4, 3), n_iters=0)
    pooled = torch.nn.functional.adaptive_avg_pool2d(x, (4, 3))
    close(centres, pooled.flatten(2).transpose(1, 2))


def test_masked_vs_unmasked_labels_differ_only_outside_window():
    # Feature = column index; token (0, 0) is then given the value of the
    # far right cell, which it may not join (window 1).
    x = torch.arange(8, dtype=torch.float64).expand(1, 1, 4, 8).clone()
    x[0, 0, 0, 0] = 7.0
    masked, lab_m = cluster_tokens(x, (1, 4), n_iters=2, temperature=1.0,
                                   window_size=1)
    faithful, lab_f = cluster_tokens(x, (1, 4), n_iters=2, temperature=1.0,
                                     window_size=1, faithful=True)
    close(masked, faithful)        # centres never depend on the label mode
    differ = (lab_m != lab_f).nonzero()[:, 1].tolist()
    assert differ == [0]
    assert lab_m[0, 0] == 0 and lab_f[0, 0] == 3
    ref_m = ref_cluster(x, (1, 4), 2, 1.0, 1, True)[1]
    ref_f = ref_cluster(x, (1, 4), 2, 1.0, 1, False)[1]
    assert torch.equal(lab_m, ref_m) and torch.equal(lab_f, ref_f)


def test_cluster_gradient_only_through_weighted_sum():
    torch.manual_seed(4)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(2, 6, 3, dtype=torch.float64)
    centres, _ = cluster_tokens(x, (2, 3), n_iters=3, temperature=0.7,
                                window_size=3)
    (centres * probe).sum().backward()
    grad = x.grad.clone()
    xr = x.detach().clone().requires_grad_(True)
    ref_c, _ = ref_cluster(xr, (2, 3), 3, 0.7, 3, True)
    (ref_c * probe).sum().backward()
    close(grad, xr.grad)
    assert grad.abs().sum() > 0


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_cluster_half_inputs(dtype):
    torch.manual_seed(5)
    x = torch.randn(2, 8, 6, 10) * 4
    xh = x.to(dtype)
    centres, labels = cluster_tokens(xh, (3, 5), temperature=0.02)
    assert centres.dtype == dtype
    assert torch.isfinite(centres.float()).all()
    ref, ref_l = cluster_tokens(xh.float(), (3, 5), temperature=0.02)
    close(centres.float(), ref.to(dtype).float(), rtol=1e-2, atol=1e-2)
    assert torch.equal(labels, ref_l)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        c_auto, _ = cluster_tokens(x, (3, 5), temperature=0.02)
    assert c_auto.dtype == torch.float32
    close(c_auto, cluster_tokens(x, (3, 5), temperature=0.02)[0])


def test_cluster_batch_independent():
    torch.manual_seed(6)
    x = torch.randn(3, 4, 6, 7)
    c, l = cluster_tokens(x, (3, 3), temperature=0.3)
    for b in range(3):
        cb, lb = cluster_tokens(x[b:b + 1], (3, 3), temperature=0.3)
        close(c[b:b + 1], cb)
        assert torch.equal(l[b:b + 1], lb)


def test_sparse_and_dense_paths_agree(monkeypatch):
    torch.manual_seed(7)
    x = torch.randn(2, 6, 9, 7)
    sparse = cluster_tokens(x, (4, 3), temperature=0.1, window_size=3)
    monkeypatch.setattr(expedit_mod, '_use_sparse', lambda *a: False)
    dense = cluster_tokens(x, (4, 3), temperature=0.1, window_size=3)
    close(sparse[0], dense[0])
    assert torch.equal(sparse[1], dense[1])


def test_metric_clustering_equals_plain_with_same_metric():
    torch.manual_seed(8)
    x = torch.randn(2, 4, 6, 6)
    c, m, lab = cluster_tokens_with_metric(x, x.clone(), (3, 3),
                                           temperature=0.2)
    c0, lab0 = cluster_tokens(x, (3, 3), temperature=0.2)
    close(c, c0)
    close(m, c0)
    assert torch.equal(lab, lab0)
    # a metric in another space changes assignments but keeps shapes
    metric = torch.nn.functional.normalize(x, dim=1)
    c2, m2, _ = cluster_tokens_with_metric(x, metric, (3, 3),
                                           temperature=5.0)
    assert c2.shape == (2, 9, 4) and m2.shape == (2, 9, 4)


def test_window_candidates_legacy_nearest():
    # 10 rows onto 7 cells; compare with F.interpolate itself.
    cand, valid = window_candidates((10, 3), (7, 1), 1)
    rows = torch.nn.functional.interpolate(
        torch.arange(7.).view(1, 1, 7, 1), size=(10, 3),
        mode='nearest').view(-1).long()
    assert torch.equal(cand[:, 0], rows) and valid.all()
    assert rows.view(10, 3)[:, 0].tolist() == [(i * 7) // 10
                                               for i in range(10)]


def test_cluster_bad_arguments():
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match='larger than the token grid'):
        cluster_tokens(x, (5, 2))
    with pytest.raises(ValueError, match='window_size'):
        cluster_tokens(x, (2, 2), window_size=4)
    with pytest.raises(ValueError, match='perfect square'):
        resolve_cluster_grid(8, (4, 4))
    assert resolve_cluster_grid(9, (4, 4)) == (3, 3)
    assert resolve_cluster_grid(0.5, (6, 4)) == (3, 2)
    with pytest.raises(ValueError, match='scale'):
        resolve_cluster_grid(1.5, (4, 4))


# ------------------------------------------------------------ reconstruction
@pytest.mark.parametrize('k,temperature', [(3, 0.5), (1, 0.5), (-1, 0.5),
                                           (12, 0.02), (5, 2.0)])
def test_reconstruct_matches_loop_reference(k, temperature):
    torch.manual_seed(10)
    B, N, M, C, D = 2, 15, 12, 4, 6
    x_low = torch.randn(B, M, C, dtype=torch.float64)
    fb = torch.randn(B, N, D, dtype=torch.float64)
    fa = torch.randn(B, M, D, dtype=torch.float64)
    ref = ref_reconstruct(x_low, fb, fa, k, temperature)
    for faithful in (False, True):
        out = reconstruct_tokens(x_low, fb, fa, k=k, temperature=temperature,
                                 faithful=faithful)
        close(out, ref)


def test_reconstruct_keeps_ties_at_kth_value():
    torch.manual_seed(11)
    x_low = torch.randn(1, 6, 3, dtype=torch.float64)
    fb = torch.randn(1, 4, 2, dtype=torch.float64)
    fa = torch.randn(1, 6, 2, dtype=torch.float64)
    fa[0, 4] = fa[0, 1]  # duplicated centre: exact ties
    fa[0, 5] = fa[0, 1]
    # k = 2 where the 2nd nearest of a token is one of the duplicates
    ref = ref_reconstruct(x_low, fb, fa, 2, 0.3)
    out = reconstruct_tokens(x_low, fb, fa, k=2, temperature=0.3)
    close(out, ref)
    # the weights are on the ties: more than k clusters contribute
    sq = ((fb[0][:, None] - fa[0][None]) ** 2).sum(-1)
    kth = sq.sort(1).values[:, 1:2]
    assert ((sq <= kth).sum(1) > 2).any()


def test_reconstruct_gradients_match_reference():
    torch.manual_seed(12)
    x_low = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    fb = torch.randn(2, 7, 4, dtype=torch.float64, requires_grad=True)
    fa = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(2, 7, 3, dtype=torch.float64)
    (reconstruct_tokens(x_low, fb, fa, k=3, temperature=0.4) *
     probe).sum().backward()
    grads = [t.grad.clone() for t in (x_low, fb, fa)]
    for t in (x_low, fb, fa):
        t.grad = None
    (ref_reconstruct(x_low, fb, fa, 3, 0.4) * probe).sum().backward()
    for g, t in zip(grads, (x_low, fb, fa)):
        close(g, t.grad)


def test_reconstruct_underflow_default_vs_faithful():
    # Large feature norms: every raw weight underflows in fp32.
    torch.manual_seed(13)
    x_low = torch.randn(1, 4, 3)
    fa = torch.randn(1, 4, 8) * 100
    fb = fa[:, [2, 0]] + 30.0  # far from every centre
    raw = reconstruct_tokens(x_low, fb, fa, k=2, temperature=0.02,
                             faithful=True)
    assert torch.equal(raw, torch.zeros_like(raw))  # the reference's zeros
    out = reconstruct_tokens(x_low, fb, fa, k=2, temperature=0.02)
    ref = ref_reconstruct(x_low.double(), fb.double(), fa.double(), 2, 0.02,
                          clamp=True, shift=True)
    close(out, ref.float())
    assert (out.abs().sum(-1) > 0).all()


def test_reconstruct_clamp_default_vs_faithful(monkeypatch):
    # Force a negative squared distance (as float cancellation produces).
    torch.manual_seed(14)
    x_low = torch.randn(1, 3, 2, dtype=torch.float64)
    fb = torch.randn(1, 2, 2, dtype=torch.float64)
    fa = torch.randn(1, 3, 2, dtype=torch.float64)
    sq = torch.tensor([[[-0.5, 0.0, 2.0], [1.0, 3.0, 0.5]]],
                      dtype=torch.float64)
    monkeypatch.setattr(expedit_mod, '_pairwise_sqdist', lambda a, b: sq)
    out = reconstruct_tokens(x_low, fb, fa, k=3, temperature=1.0)
    raw = reconstruct_tokens(x_low, fb, fa, k=3, temperature=1.0,
                             faithful=True)
    close(out, ref_reconstruct(x_low, fb, fa, 3, 1.0, clamp=True, sq=sq))
    close(raw, ref_reconstruct(x_low, fb, fa, 3, 1.0, clamp=False, sq=sq))
    assert not torch.allclose(out[0, 0], raw[0, 0])  # the clamped row
    close(out[0, 1], raw[0, 1])  # rows without negatives agree


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_reconstruct_half_inputs(dtype):
    torch.manual_seed(15)
    x_low = torch.randn(2, 6, 8)
    fb = torch.randn(2, 20, 8) * 10
    fa = torch.randn(2, 6, 8) * 10
    out = reconstruct_tokens(x_low.to(dtype), fb.to(dtype), fa.to(dtype),
                             k=3)
    assert out.dtype == dtype and torch.isfinite(out.float()).all()
    ref = reconstruct_tokens(*(t.to(dtype).float() for t in (x_low, fb, fa)),
                             k=3)
    close(out.float(), ref, rtol=2e-2, atol=2e-2)


def test_reconstruct_bad_k():
    x_low, fb, fa = torch.randn(1, 4, 2), torch.randn(1, 6, 2), \
        torch.randn(1, 4, 2)
    with pytest.raises(ValueError, match='k=5'):
        reconstruct_tokens(x_low, fb, fa, k=5)
    with pytest.raises(ValueError, match='k=0'):
        reconstruct_tokens(x_low, fb, fa, k=0)


def test_round_trip_identity_grid():
    # Grid equal to the token grid, sharp temperatures, k = 1: clustering
    # keeps every token and reconstruction returns it.
    torch.manual_seed(16)
    x = torch.randn(2, 4, 5, 6)
    centres, labels = cluster_tokens(x, (5, 6), temperature=1e4)
    tokens = x.flatten(2).transpose(1, 2)
    close(centres, tokens, atol=1e-5, rtol=1e-4)
    assert torch.equal(labels, torch.arange(30).expand(2, -1))
    out = reconstruct_tokens(centres, tokens, centres, k=1)
    close(out, tokens, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------- FLOPs
def test_flop_formulas():
    N, M, C = 16, 4, 3
    assert cluster_flops(N, M, C, n_iters=2) == \
        N * C + 2 * (2 * M * N * C + M * N) + M * N * C
    _, valid = window_candidates((4, 4), (2, 2), 1)
    assert int(valid.sum()) == N  # window 1: one cluster per token
    assert cluster_flops(N, M, C, 1, num_pairs=N) == N * C + 2 * N * C + N \
        + N * C
    assert reconstruct_flops(N, M, C, k=2) == 2 * N * M * C + N * M
    assert reconstruct_flops(N, M, C, k=2, dense_product=False) == \
        N * M * C + N * M + N * 2 * C
    assert math.isclose(reconstruct_flops(N, M, C, k=-1), 2 * N * M * C + N
                        * M)


# ------------------------------------------- split reconstruction / labels
@pytest.mark.parametrize('k', [1, 3, 9, 12, -1])
def test_weights_then_apply_equals_reconstruct(k):
    """reconstruction_weights + apply_reconstruction is reconstruct_tokens,
    also on other values than the cluster tokens (linearity)."""
    torch.manual_seed(20)
    x_low = torch.randn(2, 12, 5, dtype=torch.float64)
    fb = torch.randn(2, 15, 4, dtype=torch.float64)
    fa = torch.randn(2, 12, 4, dtype=torch.float64)
    index, weight = reconstruction_weights(fb, fa, k=k, temperature=0.7)
    assert index.shape[:2] == weight.shape[:2] == (2, 15)
    assert index.shape[2] == (12 if k < 0 else k)
    close(weight.norm(dim=2), torch.ones(2, 15, dtype=torch.float64))
    close(apply_reconstruction(x_low, index, weight),
          ref_reconstruct(x_low, fb, fa, k, 0.7, clamp=True, shift=True))
    lin = torch.randn(5, 7, dtype=torch.float64)
    close(apply_reconstruction(x_low @ lin, index, weight),
          reconstruct_tokens(x_low, fb, fa, k=k, temperature=0.7) @ lin)


def test_small_k_selection_matches_topk():
    """k <= 8 uses argmin passes on CPU: same entries and gradients as
    torch.topk."""
    torch.manual_seed(21)
    sq = torch.rand(2, 30, 17, dtype=torch.float64, requires_grad=True)
    for k in (1, 5, 8, 9):
        vals, idx = expedit_mod._smallest(sq, k)
        ref_vals, ref_idx = torch.topk(sq, k, dim=2, largest=False)
        assert torch.equal(idx, ref_idx)
        g1, = torch.autograd.grad(vals.sum(), sq)
        g2, = torch.autograd.grad(ref_vals.sum(), sq)
        assert torch.equal(g1, g2)


def test_zero_temperature_reconstruction_averages_all_clusters():
    torch.manual_seed(22)
    x_low = torch.randn(1, 6, 3, dtype=torch.float64)
    fb = torch.randn(1, 4, 2, dtype=torch.float64)
    fa = torch.randn(1, 6, 2, dtype=torch.float64)
    out = reconstruct_tokens(x_low, fb, fa, k=2, temperature=0.0)
    close(out, x_low.sum(1, keepdim=True).expand(1, 4, 3) / math.sqrt(6))
    with pytest.raises(ValueError, match='temperature=-1.0 must be >= 0'):
        reconstruct_tokens(x_low, fb, fa, k=2, temperature=-1.0)


@pytest.mark.parametrize('faithful', [False, True])
@pytest.mark.parametrize('sparse', [True, False])
def test_hard_labels_later_equal_labels_of_the_clustering(
        monkeypatch, faithful, sparse):
    """cluster_hard_labels on the final centres gives the labels the
    clustering computes (the stages skip them and compute them on use)."""
    if not sparse:
        monkeypatch.setattr(expedit_mod, '_use_sparse', lambda *a: False)
    torch.manual_seed(23)
    tok = torch.randn(2, 7 * 9, 6)
    ctr, mctr, labels = cluster_token_sequence(
        tok, (7, 9), (3, 4), temperature=0.3, window_size=3,
        faithful=faithful)
    again = cluster_hard_labels(tok, mctr, (7, 9), (3, 4), window_size=3,
                                faithful=faithful)
    assert torch.equal(again, labels)
    _, _, none = cluster_token_sequence(tok, (7, 9), (3, 4),
                                        temperature=0.3, window_size=3,
                                        with_labels=False)
    assert none is None


def test_clustering_outliers_hand_made():
    """The tokens farthest from their own centre, in row-major order."""
    centres = torch.tensor([[[0., 0.], [10., 0.]]])
    tokens = torch.tensor([[[0., 1.], [9., 0.], [0., 3.], [10., 2.],
                            [0., 0.]]])
    labels = torch.tensor([[0, 1, 0, 1, 0]])
    # residuals 1, 1, 9, 4, 0 -> the two largest are tokens 2 and 3
    assert clustering_outliers(tokens, centres, labels, 2).tolist() == \
        [[2, 3]]
    assert clustering_outliers(tokens, centres, labels, 0).shape == (1, 0)
    # the residual is to the token's own centre, not the nearest one
    far = torch.tensor([[0, 0, 1, 1, 0]])  # token 2 labelled with (10, 0)
    assert clustering_outliers(tokens, centres, far, 1).tolist() == [[2]]
    with pytest.raises(ValueError, match='num_keep=6 must be in'):
        clustering_outliers(tokens, centres, labels, 6)
    with pytest.raises(ValueError, match='shape mismatch'):
        clustering_outliers(tokens, centres, labels[:, :4], 1)


def test_keep_unclustered_copies_kept_tokens_back():
    torch.manual_seed(3)
    x_low = torch.randn(2, 6, 5, dtype=torch.float64)
    fb = torch.randn(2, 10, 4, dtype=torch.float64)
    fa = torch.randn(2, 6, 4, dtype=torch.float64)
    kept = torch.randn(2, 3, 5, dtype=torch.float64)
    keep = torch.tensor([[0, 4, 9], [2, 3, 7]])
    index, weight = reconstruction_weights(fb, fa, k=3, temperature=0.5)
    index2, weight2 = keep_unclustered(index, weight, keep, 6)
    out = apply_reconstruction(torch.cat([x_low, kept], 1), index2, weight2)
    plain = apply_reconstruction(x_low, index, weight)
    for b in range(2):
        rest = [n for n in range(10) if n not in keep[b].tolist()]
        close(out[b, keep[b]], kept[b])
        close(out[b, rest], plain[b, rest])
    assert keep_unclustered(index, weight, keep[:, :0], 6)[0] is index
