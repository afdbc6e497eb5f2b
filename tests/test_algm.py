"""ALGM token merging: the plain functions and the token stage."""
import math

import pytest
import torch
import torch.nn.functional as F

from vtseg.functional import (global_merge_groups, local_merge_groups,
                              merge_groups, merge_groups_index,
                              unmerge_groups, window_similarity)
from vtseg.models import ViT


# ------------------------------------------------ the reference, restated
def reference_clap(x, size, thresh, ws=2):
    """tue-mps/algm-segmenter, local_merge.conditional_pooling + merge_wavg
    restated on CPU for a square grid with a cls token (batch-minimum r)."""
    cls, feat = x[:, :1], x[:, 1:]
    B, N, D = feat.shape
    g = int(math.isqrt(N))
    t = feat.reshape(B, g // ws, ws, g // ws, ws, D).permute(0, 1, 3, 5, 2, 4)
    t = t.reshape(B, g // ws, g // ws, D, ws * ws)
    sims = F.cosine_similarity(t.unsqueeze(-1), t.unsqueeze(-2), dim=3)
    sims = sims * (1 - torch.eye(ws * ws))
    smap = (sims.sum(-1).sum(-1) / (ws * ws * (ws * ws - 1))).reshape(B, -1)
    r = int((smap >= thresh).sum(1).min())
    _, top = smap.topk(r, dim=-1)
    idx = torch.arange(N).reshape(g, g).unfold(0, ws, ws).unfold(1, ws, ws)
    idx = idx.reshape(-1, ws * ws)
    out_x, out_s = [], []
    for b in range(B):
        xs, s = feat[b] * size[b, 1:, None], size[b, 1:]
        merged = [xs[idx[w]].sum(0) / s[idx[w]].sum() for w in top[b]]
        msize = [s[idx[w]].sum() for w in top[b]]
        used = set(idx[top[b]].flatten().tolist())
        rest = [n for n in range(N) if n not in used]
        out_x.append(torch.cat([cls[b], torch.stack(merged).reshape(-1, D),
                                feat[b, rest]]) if r else x[b])
        out_s.append(torch.cat([size[b, :1], torch.stack(msize),
                                size[b, 1:][rest]]) if r else size[b])
    return torch.stack(out_x), torch.stack(out_s)


def reference_gbm(x, size, layer_idx):
    """global_merge.turbo_matching + merge_wavg restated (cls token)."""
    m = x / x.norm(dim=-1, keepdim=True)
    a, b = m[:, ::2], m[:, 1::2]
    scores = a @ b.transpose(1, 2)
    scores[:, 0, :] = -math.inf
    node_max, node_idx = scores.max(dim=-1)
    edge_idx = node_max.argsort(dim=-1, descending=True)
    thr = node_max[:, 1:].mean(1).mean() + node_max[:, 1:].std(1).mean() / \
        layer_idx
    r = int((node_max >= thr).sum(1).min())
    out_x, out_s = [], []
    for i in range(x.shape[0]):
        unm = edge_idx[i, r:].sort().values
        src = edge_idx[i, :r]
        dst = node_idx[i, src]
        xa, xb = (x[i] * size[i, :, None])[::2], (x[i] * size[i, :, None])[1::2]
        sa, sb = size[i, ::2].clone(), size[i, 1::2].clone()
        xb, sb = xb.clone(), sb.clone()
        for s_, d_ in zip(src.tolist(), dst.tolist()):
            xb[d_] += xa[s_]
            sb[d_] += sa[s_]
        xs = torch.cat([xa[unm], xb])
        ss = torch.cat([sa[unm], sb])
        out_x.append(xs / ss[:, None])
        out_s.append(ss)
    return torch.stack(out_x), torch.stack(out_s)


def run_ours(x, size, thresh, layer_idx, batch_coupled):
    """CLAP then GBM with the plain functions (cls token in front)."""
    cls, feat = x[:, :1], x[:, 1:]
    g = int(math.isqrt(feat.shape[1]))
    sim = window_similarity(feat, (g, g))
    assign, groups = local_merge_groups(sim, (g, g), (2, 2), thresh,
                                        batch_coupled)
    m1, s1, v1 = merge_groups(feat, assign, groups, size[:, 1:])
    a2, g2 = global_merge_groups(m1, layer_idx, valid=v1, offset=1,
                                 batch_coupled=batch_coupled)
    m2, s2, v2 = merge_groups(m1, a2, g2, s1, v1)
    return (torch.cat([cls, m1], 1), s1, v1), (m2, s2, v2, g2)


def test_matches_the_reference_when_batch_coupled():
    torch.manual_seed(0)
    B, g, D = 3, 8, 16
    x = torch.randn(B, 1 + g * g, D)
    # flat regions: some windows nearly constant, more in image 0
    x[:, 1:] += 3 * torch.randn(B, 1, D)
    x[0, 1:33] = x[0, 1:2] + 0.05 * torch.randn(32, D)
    size = torch.ones(B, 1 + g * g)
    (x1, s1, v1), (m2, s2, v2, _) = run_ours(x, size, 0.8, 6, True)
    rx1, rs1 = reference_clap(x, size, 0.8)
    assert v1 is None and x1.shape == rx1.shape
    torch.testing.assert_close(x1, rx1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s1, rs1[:, 1:])
    rx2, rs2 = reference_gbm(rx1, rs1, 6)
    torch.testing.assert_close(m2, rx2[:, 1:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s2, rs2[:, 1:])


def test_per_image_counts_do_not_depend_on_the_batch():
    torch.manual_seed(1)
    B, g, D = 3, 8, 16
    x = torch.randn(B, 1 + g * g, D) + 3 * torch.randn(B, 1, D)
    x[0, 1:33] = x[0, 1:2] + 0.05 * torch.randn(32, D)
    size = torch.ones(B, 1 + g * g)
    (x1, s1, v1), (m2, s2, v2, g2) = run_ours(x, size, 0.8, 6, False)
    assert v1 is not None and len(set(v1.sum(1).tolist())) > 1
    for i in range(B):
        (xi, si, _), (mi, s2i, _, gi) = run_ours(x[i:i + 1], size[i:i + 1],
                                                 0.8, 6, False)
        n1 = xi.shape[1]
        torch.testing.assert_close(x1[i:i + 1, :n1], xi)
        assert int(gi) == int(g2[i])
        torch.testing.assert_close(m2[i:i + 1, :int(gi)], mi, atol=1e-5,
                                   rtol=1e-5)
        # padding is zero with size 0
        assert float(s2[i, int(gi):].abs().sum()) == 0
    # sizes always sum to the number of patches
    torch.testing.assert_close(s2.sum(1), torch.full((B, ), g * g * 1.))


def test_hand_worked_windows_and_unmerge():
    # 2x4 grid: window 0 = patches (0, 1, 4, 5) identical, window 1 not
    x = torch.tensor([[1., 0.], [1., 0.], [0., 1.], [1., 1.],
                      [1., 0.], [1., 0.], [-1., 0.], [0., -1.]])[None]
    sim = window_similarity(x, (2, 4))
    assert sim.shape == (1, 1, 2)
    assert sim[0, 0, 0].item() == pytest.approx(1.0)
    assign, groups = local_merge_groups(sim, (2, 4), thresh=0.9)
    assert groups.tolist() == [5]
    # merged window first, then 2, 3, 6, 7 in order
    assert assign.tolist() == [[0, 0, 1, 2, 0, 0, 3, 4]]
    merged, size, valid = merge_groups(x, assign, groups)
    assert valid is None and size.tolist() == [[4., 1., 1., 1., 1.]]
    back = unmerge_groups(merged, assign)
    torch.testing.assert_close(back, x)  # window was constant
    index = merge_groups_index(torch.arange(8)[None], assign, groups)
    assert index.tolist() == [[-1, 2, 3, 6, 7]]


def test_leftover_rows_and_columns_stay_unmerged():
    x = torch.ones(2, 5 * 7, 4)        # all identical: every window merges
    sim = window_similarity(x, (5, 7))
    assert sim.shape == (2, 2, 3)
    assign, groups = local_merge_groups(sim, (5, 7), thresh=0.5)
    # 6 windows of 4 -> 6 tokens, 35 - 24 = 11 left over
    assert groups.tolist() == [17, 17]
    _, size, _ = merge_groups(x, assign, groups)
    assert sorted(size[0].tolist()) == [1.] * 11 + [4.] * 6


def test_global_merge_with_fixed_threshold_and_padding():
    torch.manual_seed(2)
    m = torch.randn(2, 9, 4)
    valid = torch.tensor([[True] * 9, [True] * 6 + [False] * 3])
    assign, groups = global_merge_groups(m, 3, valid=valid, thresh=2.0)
    # nothing reaches cosine 2: no merges, padding stays at the end
    assert groups.tolist() == [9, 6]
    assert sorted(assign[1, :6].tolist()) == list(range(6))
    assert assign[1, 6:].tolist() == [6, 7, 8]
    assign, groups = global_merge_groups(m, 3, valid=valid, thresh=-2.0)
    # every real A token merges: A = 5 / 3 real tokens
    assert groups.tolist() == [4, 3]


def test_single_window_and_too_small_grid():
    assign, groups = local_merge_groups(
        window_similarity(torch.ones(1, 4, 3), (2, 2)), (2, 2), thresh=0.0)
    assert groups.tolist() == [1] and assign.tolist() == [[0, 0, 0, 0]]
    with pytest.raises(ValueError, match='larger than'):
        window_similarity(torch.ones(1, 3, 3), (1, 3))


def vit(**kw):
    torch.manual_seed(0)
    return ViT(img_size=64, patch_size=8, embed_dims=32, depth=4,
               num_heads=2, out_indices=[1, 3], **kw).eval()


def test_stage_in_vit_restores_the_grid_and_images_are_independent():
    x = torch.randn(3, 3, 48, 56)
    x[0] = x[0].mean(dim=(1, 2), keepdim=True)     # a flat image merges more
    algm = vit(token_stages=[dict(type='AdaptiveTokenMerging',
                                  local_block=0, global_blocks=[2],
                                  local_thresh=0.5)])
    with torch.no_grad():
        outs = algm(x)
        feats = algm.forward_features(x, token_layers=[0, 1, 2, 3])
    assert [tuple(o.shape) for o in outs] == [(3, 32, 6, 7)] * 2
    grid = feats['grid']
    assert len(grid.restores) == 2
    assert grid.valid is not None          # per-image counts: padded
    torch.testing.assert_close(
        grid.size.sum(1), torch.full((3, ), 42.))
    with torch.no_grad():
        for i in range(3):
            for a, b in zip(outs, algm(x[i:i + 1])):
                torch.testing.assert_close(a[i:i + 1], b, atol=1e-5,
                                           rtol=1e-5)
    coupled = vit(token_stages=[dict(type='AdaptiveTokenMerging',
                                     local_block=0, global_blocks=[2],
                                     local_thresh=0.5, batch_coupled=True)])
    with torch.no_grad():
        g = coupled.forward_features(x, token_layers=[3])['grid']
    assert g.valid is None


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match='after local_block'):
        vit(token_stages=[dict(type='AdaptiveTokenMerging', local_block=2,
                               global_blocks=[1])])
    with pytest.raises(ValueError, match='needs global_thresh'):
        vit(token_stages=[dict(type='AdaptiveTokenMerging', local_block=0,
                               global_blocks=[2],
                               gbm_threshold='calibrated')])
    with pytest.raises(ValueError, match='gbm_threshold must be'):
        vit(token_stages=[dict(type='AdaptiveTokenMerging', local_block=0,
                               gbm_threshold='paper')])
    model = vit(token_stages=[
        dict(type='TokenMerging', after_block=0, r=4),
        dict(type='AdaptiveTokenMerging', local_block=1)])
    with pytest.raises(ValueError, match='needs the full patch grid'):
        model(torch.randn(1, 3, 48, 56))


def test_flops_counts_the_scores_as_the_stage():
    from vtseg.analysis import count_flops
    model = vit(token_stages=[dict(type='AdaptiveTokenMerging',
                                   local_block=0, global_blocks=[2],
                                   local_thresh=2.0)])   # merges nothing
    counted = count_flops(model, torch.randn(2, 3, 48, 56))
    # 6x7 grid: 3x3 windows of 4 tokens (16 pairs each); GBM on 42 tokens
    # after a cls token: A = 21, B = 21; features of 32 dims
    expected = 2 * (9 * 16 + (21 * 21 + 42)) * 32
    assert sum(counted.reducers.values()) == expected, counted.reducers


def test_calibration_statistics_follow_the_stage():
    from vtseg.analysis.algm_calibration import (algm_statistics,
                                                 calibrated_thresholds)
    model = vit(token_stages=[dict(type='AdaptiveTokenMerging',
                                   local_block=0, global_blocks=[2],
                                   local_thresh=0.5)])
    torch.manual_seed(3)
    stats = algm_statistics(model, [torch.randn(2, 3, 48, 56)] * 2)
    assert stats['local'].shape == (4 * 9, )      # 4 images x 3x3 windows
    per_image = stats['global_'][2]
    assert len(per_image) == 4
    res = calibrated_thresholds(stats, local_fractions=(0.5, ))
    g = res['global'][2]
    pooled = torch.cat(per_image)
    assert g['paper'] == pytest.approx(float(pooled.mean() + pooled.std()))
    assert 0 < g['merged_share_paper'] < g['merged_share_code'] <= 1
    assert res['local_quantiles'][0.5] == pytest.approx(
        float(stats['local'].median()), abs=0.05)
    with pytest.raises(ValueError, match='exactly one AdaptiveTokenMerging'):
        algm_statistics(vit(), [torch.randn(1, 3, 48, 56)])
