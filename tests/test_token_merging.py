"""ToMe token merging: the plain functions and the token stage."""
import math

import pytest
import torch

from vtseg.functional import (bipartite_matching, merge_index, merge_tokens,
                              proportional_attention_bias, unmerge_tokens)
from vtseg.models import ViT


def reference_merge(x, metric, r, size, class_token=False):
    """ToMe's bipartite soft matching and merge_wavg, restated for one
    image (facebookresearch/ToMe, tome/merge.py), with source tracking as a
    (M', M) one-hot map. With ``class_token`` the first token is the cls
    token: never merged, unmerged A tokens re-sorted by position."""
    if r <= 0:  # the reference returns do_nothing
        return x, size, torch.eye(x.shape[0])
    m = metric / metric.norm(dim=-1, keepdim=True)
    a, b = m[::2], m[1::2]
    scores = a @ b.T
    if class_token:
        scores[0, :] = -math.inf
    node_max, node_idx = scores.max(dim=-1)
    edge_idx = node_max.argsort(descending=True)
    unm_idx, src_idx = edge_idx[r:], edge_idx[:r]
    if class_token:
        unm_idx = unm_idx.sort().values
    dst_idx = node_idx[src_idx]
    source = torch.eye(x.shape[0])

    def merge(t, mode):
        ta, tb = t[::2], t[1::2]
        unm = ta[unm_idx]
        src = ta[src_idx]
        tb = tb.clone()
        for s, d in zip(src, dst_idx):
            tb[d] = tb[d] + s if mode == 'sum' else torch.maximum(tb[d], s)
        return torch.cat([unm, tb])

    xs = merge(x * size[:, None], 'sum')
    s = merge(size[:, None], 'sum')
    return xs / s, s[:, 0], merge(source, 'amax')


def test_hand_worked_merge():
    # tokens 0..3: A = {0, 2}, B = {1, 3}; 0 is close to 3, 2 to 1 but less
    metric = torch.tensor([[[1., 0.], [0., 1.], [0.6, 0.8], [1., 0.1]]])
    x = torch.tensor([[[1.], [2.], [3.], [4.]]])
    plan = bipartite_matching(metric, 1)
    assert plan.src_idx.tolist() == [[0]] and plan.dst_idx.tolist() == [[1]]
    assert plan.unm_idx.tolist() == [[1]]
    merged, size = merge_tokens(x, plan)
    # unmerged A (token 2), then B (token 1, token 3 + token 0)
    assert merged[0, :, 0].tolist() == [3., 2., 2.5]
    assert size.tolist() == [[1., 1., 2.]]
    with_prefix, _ = merge_tokens(x, plan, prefix=torch.tensor([[[9.]]]))
    assert with_prefix[0, :, 0].tolist() == [9., 3., 2., 2.5]
    assert plan.dst_of.tolist() == [[2, 1, 0, 2]]
    assert merge_index(torch.arange(4)[None], plan).tolist() == [[2, 1, -1]]
    assert unmerge_tokens(merged, plan)[0, :, 0].tolist() == \
        [2.5, 2., 3., 2.5]
    # weighted: token 0 stands for 3 patches
    merged, size = merge_tokens(x, plan, torch.tensor([[3., 1., 1., 1.]]))
    assert merged[0, 2, 0].item() == pytest.approx((3 * 1 + 4) / 4)
    assert size[0, 2].item() == 4


@pytest.mark.parametrize('M,r', [(9, 3), (10, 5), (10, 7), (7, 0), (1, 4)])
def test_merge_matches_reference_and_unmerge_restores_layout(M, r):
    torch.manual_seed(M + r)
    x, metric = torch.randn(3, M, 6), torch.randn(3, M, 4)
    size = torch.randint(1, 4, (3, M)).float()
    plan = bipartite_matching(metric, r)
    merged, new_size = merge_tokens(x, plan, size)
    r_eff = min(r, M // 2)
    assert merged.shape == (3, M - r_eff, 6)
    torch.testing.assert_close(new_size.sum(1), size.sum(1))
    full = unmerge_tokens(merged, plan)
    full_size = unmerge_tokens(new_size[..., None], plan)[..., 0]
    assert full.shape == x.shape
    for i in range(3):
        ref_x, ref_s, source = reference_merge(x[i], metric[i], r_eff,
                                               size[i])
        # the same merged set (ToMe keeps unmerged A tokens in score order,
        # vtseg in position order): compare on the full layout
        ref_full = ref_x[source.argmax(0)]
        torch.testing.assert_close(full[i], ref_full)
        torch.testing.assert_close(full_size[i], ref_s[source.argmax(0)])
    # tokens that were not merged keep their value and position
    untouched = merge_index(torch.arange(M).expand(3, M), plan)
    for i in range(3):
        for j, p in enumerate(untouched[i].tolist()):
            if p >= 0:
                torch.testing.assert_close(merged[i, j], x[i, p])


def test_single_token_after_a_cls_token_is_kept():
    x = torch.randn(2, 1, 4)
    plan = bipartite_matching(x, 3, offset=1)
    merged, size = merge_tokens(x, plan)
    torch.testing.assert_close(merged, x)
    assert size.tolist() == [[1.], [1.]]
    torch.testing.assert_close(unmerge_tokens(merged, plan), x)


@pytest.mark.parametrize('M,r', [(9, 3), (10, 5), (8, 2)])
def test_with_a_cls_token_the_order_is_tomes(M, r):
    """offset=1 (one cls token in front): exactly ToMe's output, order
    included."""
    torch.manual_seed(M * r)
    x, metric = torch.randn(2, M + 1, 5), torch.randn(2, M + 1, 3)
    size = torch.randint(1, 3, (2, M + 1)).float()
    size[:, 0] = 1
    plan = bipartite_matching(metric[:, 1:], r, offset=1)
    merged, new_size = merge_tokens(x[:, 1:], plan, size[:, 1:])
    for i in range(2):
        ref_x, ref_s, _ = reference_merge(x[i], metric[i], r, size[i],
                                          class_token=True)
        torch.testing.assert_close(merged[i], ref_x[1:])
        torch.testing.assert_close(new_size[i], ref_s[1:])


def test_proportional_attention_with_unit_sizes_is_plain_attention():
    torch.manual_seed(0)
    bias = proportional_attention_bias(torch.ones(2, 5), n_prefix=1)
    assert bias.shape == (2, 1, 1, 6) and not bias.any()
    q, k, v = (torch.randn(2, 3, 6, 4) for _ in range(3))
    plain = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    biased = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=bias)
    torch.testing.assert_close(plain, biased)
    # size s counts s times: a key of size 2 equals that key duplicated
    b2 = proportional_attention_bias(torch.tensor([[2., 1.]]))
    k2, v2 = torch.randn(1, 1, 2, 4), torch.randn(1, 1, 2, 4)
    q1 = torch.randn(1, 1, 1, 4)
    out = torch.nn.functional.scaled_dot_product_attention(q1, k2, v2,
                                                           attn_mask=b2)
    dup = torch.nn.functional.scaled_dot_product_attention(
        q1, k2[:, :, [0, 0, 1]], v2[:, :, [0, 0, 1]])
    torch.testing.assert_close(out, dup)
    assert math.isclose(b2[0, 0, 0, 0].item(), math.log(2), rel_tol=1e-6)


def vit(**kw):
    torch.manual_seed(0)
    return ViT(img_size=64, patch_size=8, embed_dims=32, depth=4,
               num_heads=2, out_indices=[1, 3], **kw).eval()


def test_stage_in_vit():
    x = torch.randn(3, 3, 48, 56)
    plain = vit()
    same = vit(token_stages=[dict(type='TokenMerging', after_block=[0, 1],
                                  r=0)])
    with torch.no_grad():
        for a, b in zip(plain(x), same(x)):
            torch.testing.assert_close(a, b)
    tome = vit(token_stages=[dict(type='TokenMerging',
                                  after_block=[0, 1, 2], r=[6, 4, 2])])
    with torch.no_grad():
        outs = tome(x)
        feats = tome.forward_features(x, token_layers=[0, 1, 2, 3])
    assert [tuple(o.shape) for o in outs] == [(3, 32, 6, 7)] * 2
    # 42 patches, -6, -4, -2; the cls token stays first
    assert [feats['tokens'][i].shape[1] for i in range(4)] == \
        [37, 33, 31, 31]
    grid = feats['grid']
    assert grid.size.sum(1).tolist() == [42.] * 3
    assert grid.attn_bias.shape == (3, 1, 1, 31)
    assert len(grid.restores) == 3 and grid.index.shape == (3, 30)
    # images merge independently: a batch equals single runs
    with torch.no_grad():
        for i in range(3):
            for a, b in zip(outs, tome(x[i:i + 1])):
                torch.testing.assert_close(a[i:i + 1], b, atol=1e-5,
                                           rtol=1e-5)
    # proportional attention changes the result, as it should
    noprop = vit(token_stages=[dict(type='TokenMerging',
                                    after_block=[0, 1, 2], r=[6, 4, 2],
                                    prop_attn=False)])
    with torch.no_grad():
        assert not torch.allclose(noprop(x)[1], outs[1])


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match='r has 2 entries for 3 blocks'):
        vit(token_stages=[dict(type='TokenMerging', after_block=[0, 1, 2],
                               r=[1, 2])])
    with pytest.raises(ValueError, match='after_block must be >= 0'):
        vit(token_stages=[dict(type='TokenMerging', after_block=-1, r=2)])
    with pytest.raises(ValueError, match='r must be >= 0'):
        vit(token_stages=[dict(type='TokenMerging', after_block=1, r=-2)])
    with pytest.raises(ValueError, match='after_block is required'):
        vit(token_stages=[dict(type='TokenMerging', after_block=None)])
    with pytest.raises(ValueError, match='metric must be'):
        bipartite_matching(torch.randn(4, 3), 1)


def test_flops_counts_the_matching_as_the_stage():
    from vtseg.analysis import count_flops
    model = vit(token_stages=[dict(type='TokenMerging', after_block=[0, 2],
                                   r=[5, 3])])
    counted = count_flops(model, torch.randn(2, 3, 48, 56))
    # 42 patches, cls in front: A = 21, B = 21 at block 0; 37 -> 18 / 19 at
    # block 2; metric = keys averaged over 2 heads (16 dims)
    expected = 2 * ((21 * 21 + 42) + (18 * 19 + 37)) * 16
    assert sum(counted.reducers.values()) == expected, counted.reducers
