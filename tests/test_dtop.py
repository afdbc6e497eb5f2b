"""DToP: the pruning rule, the canvas, the segmentor's three
implementations, stage heads and per-image FLOPs."""
import pytest
import torch
from mmseg.structures import SegDataSample
from mmengine.config import ConfigDict
from mmengine.structures import PixelData

from vtseg.functional import dtop_prune_mask, write_canvas
from vtseg.registry import MODELS
from vtseg.setup_env import register_all_modules

register_all_modules(init_default_scope=True)

HEADS = {
    'ATMStageHead': dict(channels=16, num_heads=2, num_layers=2),
    'LinearStageHead': {},
    'MaskTransformerStageHead': dict(d_model=16, n_heads=2),
}
X = torch.randn(8, 3, 40, 56, generator=torch.Generator().manual_seed(7))


# ------------------------------------------------------------ the rule
def loop_rule(scores, thresh, topk):
    """Per-image restatement of the reference rule: candidates above the
    threshold; per candidate class, its top-k candidates stay."""
    B, K, N = scores.shape
    out = torch.zeros(B, N, dtype=torch.bool)
    if thresh >= 1:
        return out
    for b in range(B):
        val, ind = scores[b].max(0)
        pos = val > thresh
        for c in ind[pos].unique():
            members = (pos & (ind == c)).nonzero()[:, 0]
            k = min(topk, len(members))
            top = val[members].topk(k).indices
            pos[members[top]] = False
        out[b] = pos
    return out


def test_prune_mask_hand_made_cases():
    # nothing confident
    s = torch.full((1, 2, 4), 0.3)
    assert not dtop_prune_mask(s, 0.5).any()
    # every token confident, one class: all but the top-k pruned
    s = torch.zeros(1, 2, 8)
    s[0, 0] = torch.linspace(0.91, 0.98, 8)
    assert dtop_prune_mask(s, 0.9, topk=5).tolist() == \
        [[True, True, True, False, False, False, False, False]]
    # topk 0: every candidate is pruned
    assert dtop_prune_mask(s, 0.9, topk=0).all()
    # strictly above: 0.91 is not above 0.91
    assert dtop_prune_mask(s, 0.91, topk=0).sum() == 7
    # thresh >= 1 prunes nothing, even scores of 1
    assert not dtop_prune_mask(torch.ones(2, 3, 5), 1.0, topk=0).any()
    # two classes keep their own top-k each
    s = torch.zeros(1, 2, 6)
    s[0, 0, :3] = torch.tensor([0.95, 0.97, 0.99])
    s[0, 1, 3:] = torch.tensor([0.99, 0.96, 0.98])
    assert dtop_prune_mask(s, 0.9, topk=1).tolist() == \
        [[True, True, False, False, True, True]]
    # ties: as torch.topk on the per-class candidate scores
    s = torch.zeros(1, 1, 6)
    s[0, 0, [1, 2, 4]] = 0.95
    pruned = dtop_prune_mask(s, 0.9, topk=2)
    per_class = torch.full((6, ), float('-inf'))
    per_class[[1, 2, 4]] = 0.95
    kept = per_class.topk(2).indices
    assert pruned.sum() == 1 and not pruned[0, kept].any()
    with pytest.raises(ValueError, match='topk'):
        dtop_prune_mask(s, 0.9, topk=-1)


@pytest.mark.parametrize('thresh', [0.3, 0.6, 0.9])
@pytest.mark.parametrize('topk', [0, 1, 5])
def test_prune_mask_matches_loop_on_random_scores(thresh, topk):
    torch.manual_seed(0)
    scores = torch.rand(4, 6, 50)
    assert torch.equal(dtop_prune_mask(scores, thresh, topk),
                       loop_rule(scores, thresh, topk))


def test_write_canvas_against_loop():
    torch.manual_seed(1)
    canvas = torch.randn(2, 3, 10)
    logits = torch.randn(2, 3, 4)
    index = torch.tensor([[2, 5, 7, 0], [9, 1, 3, 3]])
    valid = torch.tensor([[True, True, True, False],
                          [True, True, True, False]])
    out = write_canvas(canvas, logits, index, valid)
    ref = canvas.clone()
    for b in range(2):
        for j in range(4):
            if valid[b, j]:
                ref[b, :, index[b, j]] = logits[b, :, j]
    assert torch.equal(out, ref)


# ----------------------------------------------------------- the model
def dtop(head='LinearStageHead', impl='pack', thresh=None, num_classes=3,
         **extra):
    """A tiny DToP model; ``thresh=None`` picks one that prunes about half
    of the tokens of ``X`` at the first stage (randomly initialised heads
    are far from confident: 70% quantile of the first stage's
    confidences)."""
    kw = HEADS[head]
    h = dict(type=head, in_channels=32, num_classes=num_classes, **kw)
    cfg = dict(
        type='DToPEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0, 0, 0],
                               std=[1, 1, 1]),
        backbone=dict(type='ViT', img_size=64, patch_size=8, embed_dims=32,
                      depth=4, num_heads=2, out_indices=-1),
        decode_head=h, stage_heads=[h, h], stages=[1, 2, 3],
        thresh=1.0 if thresh is None else thresh, topk=2, impl=impl)
    cfg.update(extra)
    torch.manual_seed(0)
    m = MODELS.build(cfg)
    m.init_weights()
    m.eval()
    if thresh is None:
        with torch.no_grad():
            feats = m.backbone.forward_features(
                X, token_layers=m.stages, out_indices=[])['tokens']
            values = []
            for head, end in zip(m.stage_heads, m.stages):
                out = head(feats[end][:, 1:])
                conf = head.class_probs(out.mask_logits, out.presence)
                values.append(float(conf.max(1).values.quantile(0.7)))
        m.set_thresh(values)
    return m


@pytest.mark.parametrize('head', list(HEADS))
def test_pack_mask_loop_agree_and_tokens_are_pruned(head):
    models = {i: dtop(head, i) for i in ('pack', 'mask', 'loop')}
    x = X[:3]  # 5 x 7 patches
    with torch.no_grad():
        res = {i: m.dtop_forward(x) for i, m in models.items()}
    active = res['pack'].active
    assert (active[:, 0] == 35).all() and (active[:, -1] < 35).all()
    for impl in ('mask', 'loop'):
        torch.testing.assert_close(res[impl].probs, res['pack'].probs,
                                   rtol=1e-5, atol=1e-6)
        assert torch.equal(res[impl].finalised, res['pack'].finalised)
        assert torch.equal(res[impl].active, active)


@pytest.mark.parametrize('head', list(HEADS))
def test_thresh_one_equals_the_unpruned_model(head):
    m = dtop(head, thresh=1.0)
    x = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        res = m.dtop_forward(x)
        tokens = m.backbone.forward_features(
            x, token_layers=[3], out_indices=[])['tokens'][3]
        out = m.decode_head(m.backbone.norm(tokens[:, 1:]))
        ref = m.decode_head.class_probs(out.mask_logits, out.presence)
    assert res.heads == [2]  # auxiliary heads skipped: nothing to prune
    torch.testing.assert_close(res.probs, ref)
    assert (res.finalised == 2).all()
    # impl='none': the plain segmenter with the same weights
    with torch.no_grad():
        plain = m.dtop_forward(x, impl='none')
    torch.testing.assert_close(plain.probs, ref)


def test_finalised_logits_stay_frozen():
    m = dtop('LinearStageHead')
    m.train()  # every head runs and keeps its canvas
    x = X[:2]
    with torch.no_grad():
        res = m.dtop_forward(x)
    c0, c1, c2 = res.canvases
    early = res.finalised == 0
    assert early.any() and (~early).any()
    for b in range(2):
        cols = early[b]
        # tokens finalised at stage 0 keep stage 0's logits to the end
        assert torch.equal(c2[b][:, cols], c0[b][:, cols])
        # tokens still active at the last stage were rewritten
        last = res.finalised[b] == 2
        assert not torch.allclose(c2[b][:, last], c0[b][:, last])


def test_batch_equals_single_images():
    m = dtop('ATMStageHead')
    x = X
    with torch.no_grad():
        together = m.dtop_forward(x)
        alone = [m.dtop_forward(x[i:i + 1]) for i in range(8)]
    assert len(set(together.active[:, -1].tolist())) > 1
    torch.testing.assert_close(
        together.probs, torch.cat([a.probs for a in alone]), rtol=1e-5,
        atol=1e-6)


def samples(labels):
    out = []
    for lab in labels:
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=lab[None])
        s.set_metainfo(dict(img_shape=tuple(lab.shape),
                            ori_shape=tuple(lab.shape),
                            pad_shape=tuple(lab.shape)))
        out.append(s)
    return out


@pytest.mark.parametrize('head', list(HEADS))
def test_training_losses_reach_every_head(head):
    m = dtop(head)
    m.train()
    x = X[:2]
    labels = torch.randint(0, 3, (2, 40, 56))
    labels[0, :10] = 255
    losses = m.loss(x, samples(labels))
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    assert any(k.startswith('stage0.') for k in losses)
    assert any(k.startswith('decode.') for k in losses)
    total.backward()
    unused = [n for n, p in m.named_parameters()
              if p.requires_grad and p.grad is None]
    assert not unused, unused  # DDP without find_unused_parameters


def test_all_ignored_crop_gives_finite_losses():
    m = dtop('ATMStageHead')
    m.train()
    labels = torch.full((2, 40, 56), 255)
    losses = m.loss(torch.randn(2, 3, 40, 56), samples(labels))
    assert all(torch.isfinite(v) for v in losses.values())


def test_predict_stores_token_stats_and_flops_match_the_counter():
    from vtseg.analysis.flops import count_flops
    m = dtop('ATMStageHead')
    x = X[:1]
    labels = torch.randint(0, 3, (1, 40, 56))
    m.test_cfg = ConfigDict(mode='whole')
    with torch.no_grad():
        out = m.predict(x, samples(labels))[0]
        counted = count_flops(m, x)
    stats = out.token_stats
    assert stats['crops'] == 1 and len(stats['finalised']) == 3
    assert abs(sum(stats['finalised']) - 1.0) < 1e-6
    assert stats['active'][0] == 35 and stats['active'][-1] < 35
    assert stats['flops'] == counted.total, (stats['flops'], counted.total)
    # the pruning view: stage of every token, drawn by the visualizer
    stage_map = out.pred_token_stage.data[0]
    assert stage_map.shape == (5, 7)
    for s in range(3):
        assert abs(float((stage_map == s).float().mean()) -
                   stats['finalised'][s]) < 1e-6
    import numpy as np

    from vtseg.visualization import VTSegVisualizer
    img = np.zeros((40, 56, 3), np.uint8)
    drawn = VTSegVisualizer().draw_token_stages(img, stage_map.numpy(), 3)
    assert drawn.shape == img.shape and drawn.any()


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match='thresh.*\\[0, 1\\]'):
        dtop(thresh=1.5)
    with pytest.raises(ValueError, match='thresh.*\\[0, 1\\]'):
        dtop(thresh=-0.1)
    with pytest.raises(ValueError, match='out of range'):
        dtop(stages=[1, 2, 9])
    with pytest.raises(ValueError, match='strictly increasing'):
        dtop(stages=[2, 1, 3])
    with pytest.raises(ValueError, match='final head must follow'):
        dtop(stages=[0, 1, 2])
    with pytest.raises(ValueError, match='one block per stage head'):
        dtop(stages=[1, 3])
    with pytest.raises(ValueError, match='impl'):
        dtop(impl='fast')
    m = dtop()
    m.train()
    labels = torch.full((1, 40, 56), 4)  # a 5-class dataset, 3-class heads
    with pytest.raises(ValueError, match='num_classes=3'):
        m.loss(torch.randn(1, 3, 40, 56), samples(labels))


def test_class_count_check_hook_names_the_head():
    from types import SimpleNamespace

    from vtseg.engine import ClassCountCheckHook
    m = dtop(num_classes=3)
    loader = SimpleNamespace(dataset=SimpleNamespace(
        metainfo=dict(classes=('a', 'b', 'c', 'd'))))
    runner = SimpleNamespace(model=m, train_dataloader=loader,
                             val_dataloader=loader, test_dataloader=loader)
    hook = ClassCountCheckHook()
    with pytest.raises(ValueError, match='decode_head.num_classes=3.*4 '
                       'classes of the test dataset'):
        hook.before_test(runner)
    loader.dataset.metainfo['classes'] = ('a', 'b', 'c')
    hook.before_train(runner)  # consistent: no error


def test_unpruned_prefix_stops_at_trainable_blocks():
    """What the cache hook may memoise: stages before any pruning whose
    blocks are frozen; results do not depend on it."""
    m = dtop(thresh=1.0, backbone=dict(
        type='ViT', img_size=64, patch_size=8, embed_dims=32, depth=4,
        num_heads=2, out_indices=-1, frozen_blocks=2))
    assert len(m.unpruned_prefix(X[:1])) == 1  # stage 0 = blocks 0, 1
    m.backbone.frozen_blocks = -1
    for p in m.backbone.parameters():
        p.requires_grad = True
    assert m.unpruned_prefix(X[:1]) == ()
    with torch.no_grad():
        probs = m.dtop_forward(X[:2]).probs
    m2 = dtop(thresh=1.0)
    m2.load_state_dict(m.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(m2.dtop_forward(X[:2]).probs, probs)


def test_merging_stages_run_without_pruning_and_are_refused_with_it():
    stage = dict(type='TokenMerging', after_block=[0, 1], r=4)
    m = dtop(thresh=1.0, impl='none')
    merged = dtop(thresh=1.0, impl='none')
    merged.backbone.set_token_stages([stage])
    x = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        res = merged.dtop_forward(x)
        plain = m.dtop_forward(x)
    # merges are undone before the final head: one column per patch
    assert res.probs.shape == plain.probs.shape == (2, 3, 35)
    assert not torch.allclose(res.probs, plain.probs)
    merged.impl = 'pack'
    with pytest.raises(ValueError, match="use impl='none'"):
        with torch.no_grad():
            merged.dtop_forward(x)
