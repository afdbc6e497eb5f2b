"""Expedit token stages inside the vtseg ViT (tiny random model)."""
import pytest
import torch

from vtseg.models.reducers import (ExpeditState, TokenClustering,
                                   TokenReconstruction, expedit_levels,
                                   expedit_token_stages)
from vtseg.models.utils import TokenGrid
from vtseg.registry import MODELS


def tiny_vit(token_stages=None, out_indices=-1, **kw):
    torch.manual_seed(0)
    cfg = dict(type='ViT', img_size=64, patch_size=8, embed_dims=32,
               depth=4, num_heads=2, out_indices=out_indices,
               token_stages=token_stages or [])
    cfg.update(kw)
    vit = MODELS.build(cfg)
    vit.init_weights()
    return vit.eval()


def same_weights(dst, src):
    dst.load_state_dict(src.state_dict())
    return dst


def test_identity_grid_matches_plain_model():
    plain = tiny_vit()
    # grid = token grid and sharp temperatures: every token is its own
    # cluster and is reconstructed from that cluster alone.
    fast = same_weights(tiny_vit(expedit_token_stages(
        cluster_layer=1, grid=(8, 8), k=4, cluster_temperature=1e6,
        reconstruct_temperature=1e6)), plain)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = plain(x)[0], fast(x)[0]
    assert b.shape == a.shape == (2, 32, 8, 8)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_non_square_input_and_restore_modes():
    x = torch.randn(1, 3, 48, 80)  # 6 x 10 tokens
    full = tiny_vit(expedit_token_stages(cluster_layer=1, grid=0.5, k=3))
    with torch.no_grad():
        out = full.forward_features(x)
    assert out['outs'][0].shape == (1, 32, 6, 10)
    state_grid = out['grid']
    assert state_grid.reduced_hw == (3, 5)
    assert isinstance(state_grid.restores[-1], ExpeditState)
    assert (state_grid.index == -1).all() and state_grid.layout == (3, 5)
    assert state_grid.x.shape == (1, 1 + 15, 32)
    none = same_weights(tiny_vit(expedit_token_stages(
        cluster_layer=1, grid=(3, 4), restore='none')), full)
    with torch.no_grad():
        assert none(x)[0].shape == (1, 32, 3, 4)


def test_reconstruct_between_blocks_and_levels():
    plain = tiny_vit(out_indices=[0, 1, 2, 3])
    stages = expedit_token_stages(cluster_layer=1, grid=(4, 4), k=3,
                                  reconstruct_layer=2)
    fast = same_weights(tiny_vit(stages, out_indices=[0, 1, 2, 3]), plain)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = plain(x)
        out = fast.forward_features(x)
    outs = out['outs']
    # levels taken before clustering are unchanged; level 1 is taken
    # before the stage that runs after block 1
    torch.testing.assert_close(outs[0], ref[0])
    torch.testing.assert_close(outs[1], ref[1])
    # level 2 is taken before the reconstruction after block 2: it is
    # rebuilt by... nothing (no output restorer) -> the (h, w) grid
    assert outs[2].shape == (2, 32, 4, 4)
    assert outs[3].shape == (2, 32, 8, 8)
    assert out['grid'].restores == () and not out['grid'].is_reduced
    assert torch.equal(out['grid'].index[0], torch.arange(64))


def test_output_restorer_rebuilds_every_level_after_clustering():
    stages = expedit_token_stages(cluster_layer=0, grid=(4, 4), k=3)
    vit = tiny_vit(stages, out_indices=[0, 2, 3], norm_outputs='all')
    with torch.no_grad():
        outs = vit(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 8)] * 3


def test_batch_independence():
    vit = tiny_vit(expedit_token_stages(cluster_layer=1, grid=(5, 3), k=4,
                                        cluster_temperature=0.5,
                                        reconstruct_temperature=0.5,
                                        temperature_mode='relative'))
    x = torch.randn(3, 3, 64, 48)
    with torch.no_grad():
        together = vit(x)[0]
        alone = torch.cat([vit(x[i:i + 1])[0] for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_prefix_tokens_pass_through():
    stage = TokenClustering(after_block=0, grid=(2, 2))
    x = torch.randn(2, 2 + 16, 8)
    grid = TokenGrid(x=x, hw=(4, 4), n_prefix=2)
    out = stage(grid)
    assert torch.equal(out.x[:, :2], x[:, :2])
    assert out.x.shape == (2, 2 + 4, 8) and out.reduced_hw == (2, 2)
    rec = TokenReconstruction(after_block=1, k=2)
    back = rec(out)
    assert torch.equal(back.x[:, :2], x[:, :2])
    assert back.x.shape == x.shape and back.restores == ()


def test_relative_temperature_is_scale_free():
    torch.manual_seed(3)
    x = torch.randn(2, 1 + 36, 8)
    stage = TokenClustering(after_block=0, grid=(3, 3), temperature=2.0,
                            temperature_mode='relative')
    a = stage(TokenGrid(x=x, hw=(6, 6), n_prefix=1))
    b = stage(TokenGrid(x=x * 100, hw=(6, 6), n_prefix=1))
    torch.testing.assert_close(b.x, a.x * 100, rtol=1e-4, atol=1e-4)
    assert torch.equal(a.restores[-1].hard_labels,
                       b.restores[-1].hard_labels)
    rec = TokenReconstruction(k=3, temperature=2.0)
    ya = rec.restore(a, a.x)[1]
    yb = rec.restore(b, b.x)[1]
    torch.testing.assert_close(yb, ya * 100, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('distance', ['layernorm', 'l2'])
def test_normalised_distances(distance):
    vit = tiny_vit(expedit_token_stages(cluster_layer=1, grid=(4, 4), k=3,
                                        cluster_temperature=1.0,
                                        reconstruct_temperature=1.0,
                                        distance=distance))
    with torch.no_grad():
        out = vit.forward_features(torch.randn(1, 3, 64, 64),
                                   out_indices=[1])
    state = out['grid'].restores[-1]
    if distance == 'l2':
        norms = state.feat_before.norm(dim=-1)
        torch.testing.assert_close(norms, torch.ones_like(norms))
    assert torch.isfinite(vit(torch.randn(1, 3, 64, 64))[0]).all()


def test_naive_unpooling_copies_hard_label_cluster():
    stage = TokenClustering(after_block=0, grid=(2, 2), temperature=1.0)
    x = torch.randn(1, 1 + 16, 4)
    red = stage(TokenGrid(x=x, hw=(4, 4), n_prefix=1))
    rec = TokenReconstruction(mode='naive')
    back, out = rec.restore(red, red.x)
    assert back.restores == () and back.reduced_hw is None
    labels = red.restores[-1].hard_labels[0]
    torch.testing.assert_close(out[0, 1:], red.x[0, 1:][labels])


# ------------------------------------------------------------- bad configs
def test_grid_larger_than_token_grid():
    vit = tiny_vit(expedit_token_stages(cluster_layer=1, grid=(9, 4), k=3))
    with pytest.raises(ValueError, match='grid.*larger than the token grid'):
        vit(torch.randn(1, 3, 64, 64))


def test_cluster_layer_after_reconstruct_layer():
    with pytest.raises(ValueError, match='cluster_layer.*before '
                       'reconstruct_layer'):
        expedit_token_stages(cluster_layer=2, grid=(4, 4), k=3,
                             reconstruct_layer=1)
    with pytest.raises(ValueError, match='before reconstruct_layer'):
        expedit_token_stages(cluster_layer=2, grid=(4, 4), k=3,
                             reconstruct_layer=-2, depth=4)
    # written by hand, without the helper: caught at the first forward
    vit = tiny_vit([
        dict(type='TokenClustering', after_block=2, grid=(4, 4)),
        dict(type='TokenReconstruction', after_block=1, k=3)
    ])
    with pytest.raises(RuntimeError, match='reconstruct_layer must come '
                       'after cluster_layer'):
        vit(torch.randn(1, 3, 64, 64))
    vit = tiny_vit([
        dict(type='TokenClustering', after_block=2, grid=(4, 4)),
        dict(type='TokenReconstruction', after_block=2, k=3)
    ])
    with pytest.raises(ValueError, match='before reconstruct_layer'):
        vit(torch.randn(1, 3, 64, 64))


def test_k_larger_than_clusters():
    with pytest.raises(ValueError, match='k=20 is larger than the number '
                       'of clusters 16'):
        expedit_token_stages(cluster_layer=1, grid=(4, 4))
    vit = tiny_vit([
        dict(type='TokenClustering', after_block=1, grid=0.5),
        dict(type='TokenReconstruction', k=20)
    ])
    with pytest.raises(ValueError, match='k=20 is larger than the number '
                       'of clusters M=16'):
        vit(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match='k must be a non-zero int'):
        TokenReconstruction(k=0)


def test_bad_window_and_grid_specs_at_build_time():
    with pytest.raises(ValueError, match='window_size'):
        MODELS.build(dict(type='TokenClustering', after_block=1,
                          grid=(4, 4), window_size=4))
    with pytest.raises(ValueError, match='perfect square'):
        MODELS.build(dict(type='TokenClustering', after_block=1, grid=50))
    with pytest.raises(TypeError, match='grid'):
        MODELS.build(dict(type='TokenClustering', after_block=1,
                          grid='big'))
    with pytest.raises(ValueError, match='distance'):
        MODELS.build(dict(type='TokenClustering', after_block=1,
                          grid=(4, 4), distance='cosine'))
    with pytest.raises(ValueError, match='out of range'):
        tiny_vit(expedit_token_stages(cluster_layer=7, grid=(4, 4), k=3))
    # faithful perfect-square int grid
    stage = MODELS.build(dict(type='TokenClustering', after_block=1,
                              grid=16))
    assert stage.resolve_grid((8, 8)) == (4, 4)


def test_hourglass_vit_is_the_vit_with_expedit_stages():
    """The reference's backbone name builds the same network as
    ``ViT(token_stages=expedit_token_stages(...))`` and loads its weights
    strictly; bad settings fail at build time."""
    args = dict(cluster_layer=1, grid=(3, 4), k=5, reconstruct_layer=2,
                cluster_temperature=5.0, reconstruct_temperature=5.0)
    vit = tiny_vit(expedit_token_stages(depth=4, **args),
                   out_indices=[1, 3])
    torch.manual_seed(1)
    hourglass = MODELS.build(
        dict(type='HourglassViT', img_size=64, patch_size=8, embed_dims=32,
             depth=4, num_heads=2, out_indices=[1, 3], **args))
    hourglass.load_state_dict(vit.state_dict(), strict=True)
    hourglass.eval()
    x = torch.randn(2, 3, 40, 72)
    with torch.no_grad():
        for a, b in zip(vit(x), hourglass(x)):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b)
    base = dict(type='HourglassViT', img_size=64, patch_size=8,
                embed_dims=32, depth=4, num_heads=2)
    with pytest.raises(ValueError, match='must be before reconstruct_layer'):
        MODELS.build(dict(base, cluster_layer=2, reconstruct_layer=1,
                          grid=(3, 3), k=4))
    with pytest.raises(ValueError, match='cluster_layer=4 is out of range'):
        MODELS.build(dict(base, cluster_layer=4, grid=(3, 3), k=4))
    with pytest.raises(ValueError, match='k=20 is larger than'):
        MODELS.build(dict(base, cluster_layer=1, grid=(3, 3)))
    with pytest.raises(ValueError, match="use type='ViT'"):
        MODELS.build(dict(base, cluster_layer=1, grid=(3, 3), k=4,
                          token_stages=[]))


# ------------------------------------------------------- nested clustering
def test_nested_clustering_identity_grids_match_plain_model():
    """Clustering twice with one cluster per token and sharp temperatures
    changes nothing: both levels are rebuilt exactly."""
    plain = tiny_vit()
    stages = expedit_token_stages(
        cluster_layer=[0, 2], grid=[(8, 8), (8, 8)], k=4,
        cluster_temperature=1e6, reconstruct_temperature=1e6, depth=4)
    assert [s['after_block'] for s in stages] == [0, 2, None]
    fast = same_weights(tiny_vit(stages), plain)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fast(x)[0], plain(x)[0], rtol=1e-4,
                                   atol=1e-5)


def test_nested_clustering_levels_and_grids():
    x = torch.randn(1, 3, 48, 80)  # 6 x 10 tokens
    vit = tiny_vit(expedit_token_stages(cluster_layer=[0, 2],
                                        grid=[0.7, (2, 3)], k=3))
    with torch.no_grad():
        out = vit.forward_features(x)
    assert out['outs'][0].shape == (1, 32, 6, 10)
    grid = out['grid']
    assert grid.reduced_hw == (2, 3) and grid.x.shape == (1, 1 + 6, 32)
    outer, inner = grid.restores  # the restore stack, oldest first
    assert expedit_levels(grid) == [inner, outer]
    assert (inner.hw, inner.grid) == ((4, 7), (2, 3))
    assert (outer.hw, outer.grid) == ((6, 10), (4, 7))
    # popping the inner level brings back the outer cluster grid
    assert grid.pop(torch.zeros(1, 1 + 28, 32)).reduced_hw == (4, 7)
    assert inner.hard_labels.shape == (1, 28)  # computed on use
    assert outer.hard_labels.max() < 28
    # restore='none': the outputs are the innermost cluster grid
    none = same_weights(tiny_vit(expedit_token_stages(
        cluster_layer=[0, 2], grid=[0.7, (2, 3)], restore='none')), vit)
    with torch.no_grad():
        assert none(x)[0].shape == (1, 32, 2, 3)


def test_nested_clustering_bad_settings():
    with pytest.raises(ValueError, match='grid must be a list of 2'):
        expedit_token_stages(cluster_layer=[1, 2], grid=0.5, k=3)
    with pytest.raises(ValueError, match='must be increasing'):
        expedit_token_stages(cluster_layer=[2, 1], grid=[0.7, 0.7], k=3)
    with pytest.raises(ValueError, match=r'cluster_layer \(2\) must be '
                       'before reconstruct_layer'):
        expedit_token_stages(cluster_layer=[0, 2], grid=[0.7, 0.7], k=3,
                             reconstruct_layer=1)
    vit = tiny_vit(expedit_token_stages(cluster_layer=[0, 1],
                                        grid=[(3, 3), (4, 4)], k=3))
    with pytest.raises(ValueError, match=r'cluster grid \(4, 4\) is larger '
                       r'than the token grid \(3, 3\)'):
        vit(torch.randn(1, 3, 64, 64))


# ------------------------------------- reconstruction in the decode head
def tiny_head():
    torch.manual_seed(3)
    head = MODELS.build(dict(
        type='UpConvHead', in_channels=32, channels=8, up_channels=(16, 8),
        num_classes=2, out_channels=1, threshold=0.5,
        loss_decode=dict(type='mmseg.CrossEntropyLoss', use_sigmoid=True)))
    for m in head.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return head.eval()


@pytest.mark.parametrize('mode', ['weighted', 'naive'])
def test_head_reconstruction_equals_backbone_reconstruction(mode):
    """restore='head' hands a ClusteredFeatureMap to UpConvHead, whose first
    transposed convolution runs on the clusters and rebuilds its products:
    the logits equal restore='backbone' up to rounding."""
    from vtseg.models.utils import ClusteredFeatureMap
    kw = dict(cluster_layer=[0, 2], grid=[0.7, 0.6], k=3,
              cluster_temperature=2.0, reconstruct_temperature=2.0)
    backbone = tiny_vit(expedit_token_stages(restore='backbone', **kw))
    head_side = same_weights(
        tiny_vit(expedit_token_stages(restore='head', **kw)), backbone)
    for vit in (backbone, head_side):
        vit.output_restorers[0].mode = mode
    head = tiny_head()
    x = torch.randn(2, 3, 48, 80)
    with torch.no_grad():
        full, = backbone(x)
        lazy, = head_side(x)
        assert isinstance(lazy, ClusteredFeatureMap)
        assert lazy.shape == full.shape == (2, 32, 6, 10)
        torch.testing.assert_close(lazy.materialize(), full, rtol=1e-4,
                                   atol=1e-5)
        torch.testing.assert_close(head((lazy, )), head((full, )),
                                   rtol=1e-4, atol=1e-5)


def test_clustered_map_refused_by_other_heads():
    vit = tiny_vit(expedit_token_stages(cluster_layer=1, grid=0.5, k=3,
                                        restore='head'))
    with torch.no_grad():
        lazy, = vit(torch.randn(1, 3, 64, 64))
    conv = torch.nn.Conv2d(32, 4, 1)
    with pytest.raises(TypeError, match="conv2d.*received a "
                       "ClusteredFeatureMap.*restore='backbone'"):
        conv(lazy)
    with pytest.raises(ValueError, match='defer_to_head=True needs '
                       'after_block=None'):
        TokenReconstruction(after_block=2, defer_to_head=True)
    with pytest.raises(ValueError, match="restore='head' cannot be "
                       'combined with reconstruct_layer'):
        expedit_token_stages(cluster_layer=1, grid=0.5, k=3,
                             restore='head', reconstruct_layer=2)


def test_hourglass_vit_nested_and_head_restore():
    hourglass = MODELS.build(dict(
        type='HourglassViT', img_size=64, patch_size=8, embed_dims=32,
        depth=4, num_heads=2, cluster_layer=[1, 2], grid=[0.75, 0.5], k=3,
        restore='head'))
    kinds = [type(s).__name__ for s in hourglass.token_stages]
    assert kinds == ['TokenClustering'] * 2 + ['TokenReconstruction']
    assert hourglass.output_restorers[0].defer_to_head


def test_hourglass_config_builds_the_vit_config_network():
    """configs/expedit/*_hourglass.py (the reference's backbone name) and
    the ViT + token_stages config build the same network (built narrow:
    the width does not matter here)."""
    import os.path as osp

    from mmengine.config import Config
    root = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                    'configs', 'expedit')
    nets = []
    for name in ('expedit_segmenter_vit-l16_ade20k-640.py',
                 'expedit_segmenter_vit-l16_ade20k-640_hourglass.py'):
        cfg = Config.fromfile(osp.join(root, name))
        nets.append(MODELS.build(dict(cfg.model.backbone, embed_dims=32,
                                      num_heads=2)))
    vit, hourglass = nets
    assert type(hourglass).__name__ == 'HourglassViT'
    assert [(k, v.shape) for k, v in vit.state_dict().items()] == \
        [(k, v.shape) for k, v in hourglass.state_dict().items()]
    assert [repr(s) for s in vit.token_stages] == \
        [repr(s) for s in hourglass.token_stages]


def test_keep_outliers_copies_kept_tokens_back():
    """Kept tokens follow the clusters and come back to their positions
    unchanged; every other position is rebuilt as without keeping."""
    torch.manual_seed(1)
    x = torch.randn(2, 1 + 24, 8)
    grid = TokenGrid(x=x, hw=(4, 6), n_prefix=1)
    kw = dict(after_block=0, grid=(2, 3), temperature=2.0)
    keeping = TokenClustering(keep_outliers=0.25, **kw)(grid)
    plain = TokenClustering(**kw)(grid)
    state = keeping.restores[-1]
    assert state.keep.shape == (2, 6) and state.num_tokens == 12
    assert keeping.x.shape == (2, 1 + 12, 8) and keeping.layout is None
    torch.testing.assert_close(keeping.x[:, :7], plain.x)
    assert (keeping.index[:, :6] == -1).all()
    assert torch.equal(keeping.index[:, 6:], state.keep)
    # the kept tokens are those worst represented by their centre
    feat, ctr = state.feat_before, state.feat_after
    own = torch.gather(ctr, 1, state.hard_labels[..., None].expand(-1, -1, 8))
    residual = (feat - own).square().sum(-1)
    assert torch.equal(state.keep,
                       residual.topk(6, dim=1).indices.sort(1).values)
    rec = TokenReconstruction(k=3, temperature=2.0)
    back_keep = rec.restore(keeping, keeping.x)[1]
    back_plain = rec.restore(plain, plain.x)[1]
    for b in range(2):
        kept = state.keep[b].tolist()
        rest = [n for n in range(24) if n not in kept]
        assert torch.equal(back_keep[b, 1:][kept], x[b, 1:][kept])
        torch.testing.assert_close(back_keep[b, 1:][rest],
                                   back_plain[b, 1:][rest])
    # nothing can cluster the irregular set again
    with pytest.raises(RuntimeError, match='no regular grid'):
        TokenClustering(after_block=1, grid=(1, 2))(keeping)
    with pytest.raises(ValueError, match='keep_outliers must be a fraction'):
        TokenClustering(keep_outliers=1.0, **kw)


@pytest.mark.parametrize('restore', ['backbone', 'head'])
def test_keep_outliers_in_the_vit(restore):
    """Batched = one image at a time; restore='head' equals 'backbone';
    a nested level may keep outliers of the outer cluster grid."""
    kw = dict(cluster_layer=1, grid=0.5, k=3, cluster_temperature=2.0,
              reconstruct_temperature=2.0, keep_outliers=0.2)
    vit = tiny_vit(expedit_token_stages(**kw))
    x = torch.randn(3, 3, 48, 80)
    with torch.no_grad():
        out = vit.forward_features(x)
        assert out['outs'][0].shape == (3, 32, 6, 10)
        assert out['grid'].x.shape == (3, 1 + 15 + 12, 32)
        together = vit(x)[0]
        alone = torch.cat([vit(x[i:i + 1])[0] for i in range(3)])
        torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
        other = same_weights(tiny_vit(expedit_token_stages(
            restore=restore, **kw)), vit)
        lazy = other(x)[0]
        if restore == 'head':
            lazy = lazy.materialize()
        torch.testing.assert_close(lazy, together, rtol=1e-4, atol=1e-5)
    nested = [dict(type='TokenClustering', after_block=0, grid=0.7),
              dict(type='TokenClustering', after_block=2, grid=0.5,
                   keep_outliers=0.25),
              dict(type='TokenReconstruction', k=3)]
    with torch.no_grad():
        assert tiny_vit(nested)(x)[0].shape == (3, 32, 6, 10)
    # a clustering that keeps outliers leaves no grid for the outputs
    with pytest.raises(ValueError, match="restore='none' cannot be "
                       'combined with keep_outliers'):
        expedit_token_stages(restore='none', **kw)
    none = tiny_vit([dict(type='TokenClustering', after_block=1, grid=0.5,
                          keep_outliers=0.2)])
    with pytest.raises(RuntimeError, match='no output restorer'):
        with torch.no_grad():
            none(x)


def test_prop_attn_sizes_and_bias():
    """Cluster sizes are hard-label counts (kept tokens count once, in
    their own token); they sum to the patch count through nested levels;
    the bias is log(size), 0 for the prefix, and leaves with the state."""
    torch.manual_seed(2)
    x = torch.randn(2, 1 + 48, 8)
    grid = TokenGrid(x=x, hw=(6, 8), n_prefix=1)
    one = TokenClustering(after_block=0, grid=(3, 4), temperature=2.0,
                          keep_outliers=0.125, prop_attn=True)(grid)
    state = one.restores[-1]
    assert one.size.shape == (2, 12 + 6)
    torch.testing.assert_close(one.size.sum(1), torch.full((2, ), 48.0),
                               rtol=0, atol=1e-2)  # emptied: 1e-4 each
    assert (one.size[:, 12:] == 1).all()
    counts = torch.stack([torch.bincount(
        state.hard_labels[b][~torch.isin(torch.arange(48), state.keep[b])],
        minlength=12).float() for b in range(2)])
    torch.testing.assert_close(one.size[:, :12], counts.clamp(min=1e-4))
    assert one.attn_bias.shape == (2, 1, 1, 1 + 18)
    assert (one.attn_bias[..., 0] == 0).all()
    torch.testing.assert_close(one.attn_bias[:, 0, 0, 1:], one.size.log())
    plain = TokenClustering(after_block=0, grid=(3, 4), temperature=2.0,
                            prop_attn=True)(grid)
    two = TokenClustering(after_block=1, grid=(1, 2), temperature=2.0,
                          prop_attn=True)(plain)
    torch.testing.assert_close(two.size.sum(1), torch.full((2, ), 48.0))
    # the reconstruction undoes both levels: the patch grid has no bias
    back = TokenReconstruction(k=1).restore(two, two.x)[0]
    assert back.attn_bias is None and back.size is None
    assert back.x.shape == x.shape
