"""The token contract of the ViT backbone: TokenGrid fields, the restore
stack, packed token sets, attention bias, stage positions and activation
checkpointing (docs/backbone.md)."""
import math

import pytest
import torch
import torch.nn.functional as F

import vtseg  # noqa: F401
from vtseg.functional import reconstruct_tokens
from vtseg.models import ViT
from vtseg.models.layers import Attention
from vtseg.models.reducers import BaseTokenStage, ExpeditState
from vtseg.models.utils import (PackedTokens, RestoreState, TokenGrid,
                                pack_tokens)
from vtseg.registry import MODELS


def tiny_vit(**kw):
    cfg = dict(img_size=32, patch_size=8, embed_dims=24, depth=3,
               num_heads=3, out_indices=-1)
    cfg.update(kw)
    torch.manual_seed(0)
    m = ViT(**cfg)
    m.init_weights()
    return m.eval()


@MODELS.register_module(force=True)
class _PackStage(BaseTokenStage):
    """Test stage: keep the patch tokens whose first channel is positive
    (content-dependent, so each image keeps a different number), packed."""

    def forward(self, grid, block=None, keys=None):
        keep = grid.patches[..., 0] > 0
        return pack_tokens(grid, keep, owner='_PackStage')


@MODELS.register_module(force=True)
class _RecordingStage(BaseTokenStage):
    """Test stage: records where it runs and adds 1 to every token."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls = []

    def forward(self, grid, block=None, keys=None):
        self.calls.append((block, None if keys is None else keys.clone()))
        return grid.replace(x=grid.x + 1.0)


# ---------------------------------------------------------------- attention
def loop_attention(attn, x, key_mask, bias):
    """Explicit softmax attention, one image / head / query at a time."""
    B, T, C = x.shape
    h = attn.num_heads
    d = C // h
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias
    q, k, v = qkv.split(C, dim=-1)
    out = torch.zeros(B, T, C)
    for b in range(B):
        for hh in range(h):
            sl = slice(hh * d, (hh + 1) * d)
            for i in range(T):
                logits = torch.stack([
                    (q[b, i, sl] @ k[b, j, sl]) / math.sqrt(d) +
                    (0.0 if bias is None else bias[b % bias.shape[0],
                                                   hh % bias.shape[1],
                                                   i % bias.shape[2], j])
                    for j in range(T)
                ])
                if key_mask is not None:
                    logits = logits.masked_fill(~key_mask[b], float('-inf'))
                out[b, i, sl] = logits.softmax(0) @ v[b, :, sl]
    return out @ attn.proj.weight.T + attn.proj.bias


@pytest.mark.parametrize('bias_shape', [None, (3, 1, 1, 7), (1, 3, 7, 7),
                                        (3, 3, 7, 7)])
@pytest.mark.parametrize('with_mask', [False, True])
def test_attention_bias_and_mask_against_loop(bias_shape, with_mask):
    torch.manual_seed(1)
    attn = Attention(12, 3).eval()
    x = torch.randn(3, 7, 12)
    key_mask = None
    if with_mask:
        key_mask = torch.rand(3, 7) > 0.4
        key_mask[:, 0] = True  # every image keeps a key
    bias = None if bias_shape is None else torch.randn(bias_shape)
    with torch.no_grad():
        out, (q, k, v) = attn(x, key_mask, bias, return_qkv=True)
        ref = loop_attention(attn, x, key_mask, bias)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert k.shape == (3, 3, 7, 4)


def test_zero_bias_equals_plain_attention():
    """Proportional attention with all sizes 1 adds log(1) = 0."""
    attn = Attention(12, 3).eval()
    x = torch.randn(2, 5, 12)
    bias = torch.ones(2, 1, 1, 5).log()
    with torch.no_grad():
        torch.testing.assert_close(attn(x, attn_bias=bias), attn(x))


# ------------------------------------------------------------- TokenGrid
def test_token_grid_fields_and_shape_checks():
    x = torch.randn(2, 1 + 12, 4)
    g = TokenGrid(x=x, hw=(3, 4), n_prefix=1)
    assert torch.equal(g.index, torch.arange(12).expand(2, 12))
    assert g.layout == (3, 4) and not g.is_reduced and g.key_mask() is None
    with pytest.raises(ValueError, match=r'valid has shape \(2, 5\)'):
        TokenGrid(x=x, hw=(3, 4), n_prefix=1,
                  valid=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match='valid must be a bool'):
        TokenGrid(x=x, hw=(3, 4), n_prefix=1, valid=torch.ones(2, 12))
    with pytest.raises(ValueError, match='attn_bias has 5 key entries'):
        g.replace(attn_bias=torch.zeros(2, 1, 1, 5))
    with pytest.raises(ValueError, match='reduced_hw'):
        g.replace(reduced_hw=(2, 2))
    with pytest.raises(RuntimeError, match='restore stack is empty'):
        g.pop(x)
    with pytest.raises(NotImplementedError, match='no default undo'):
        RestoreState().undo(x)


def test_pack_tokens_index_valid_and_exact_undo():
    """Two packings in a row undo exactly, in reverse order; index tracks
    each token's original patch; padding is marked invalid."""
    torch.manual_seed(2)
    x = torch.randn(3, 1 + 12, 5)
    g = TokenGrid(x=x, hw=(3, 4), n_prefix=1,
                  size=torch.arange(36.).view(3, 12))
    keep1 = torch.rand(3, 12) > 0.3
    keep1[1] = False
    keep1[1, 7] = True  # image 1 keeps a single token
    g1 = pack_tokens(g, keep1)
    counts = keep1.sum(1)
    assert g1.num_tokens == int(counts.max())
    assert torch.equal(g1.valid.sum(1), counts)
    for b in range(3):
        n = int(counts[b])
        kept = keep1[b].nonzero()[:, 0]
        assert torch.equal(g1.index[b, :n], kept)
        assert torch.equal(g1.patches[b, :n], x[b, 1:][kept])
        assert torch.equal(g1.size[b, :n], g.size[b, kept])
    assert g1.layout is None and g1.key_mask().shape == (3, 1 + g1.num_tokens)
    keep2 = torch.rand(3, g1.num_tokens) > 0.5
    g2 = pack_tokens(g1, keep2)
    assert len(g2.restores) == 2
    assert all(isinstance(s, PackedTokens) for s in g2.restores)
    assert torch.equal(g2.valid.sum(1), (keep2 & g1.valid).sum(1))
    # every real token still sits at its original patch
    for b in range(3):
        for j in range(g2.num_tokens):
            if g2.valid[b, j]:
                assert torch.equal(g2.patches[b, j],
                                   x[b, 1 + int(g2.index[b, j])])
    back1, _ = g2.undo_top()
    assert back1.num_tokens == g1.num_tokens
    assert torch.equal(back1.valid, g1.valid)
    back, full = back1.undo_top()
    assert torch.equal(full, x) and back.restores == ()
    assert torch.equal(back.index, g.index) and back.valid is None


def test_packed_batch_equals_single_images():
    """A batch of 4 images keeping different numbers of tokens runs as one
    padded batch (no loop over images) and equals 4 single-image runs;
    dropped tokens keep their values at packing time."""
    m = tiny_vit(out_indices=(0, 2), depth=3,
                 token_stages=[dict(type='_PackStage', after_block=0)])
    torch.manual_seed(3)
    x = torch.randn(4, 3, 32, 40)
    with torch.no_grad():
        out = m.forward_features(x)
        counts = out['grid'].valid.sum(1)
        assert len(set(counts.tolist())) > 1  # different per image
        assert out['grid'].x.shape[1] == 1 + int(counts.max()) < 1 + 20
        alone = [m(x[i:i + 1]) for i in range(4)]
    for level in range(2):
        torch.testing.assert_close(
            out['outs'][level], torch.cat([a[level] for a in alone]),
            rtol=1e-5, atol=1e-5)
    # level 0 is taken before packing; at level 2 the dropped tokens hold
    # their block-0 values (normalised), the kept ones were refined
    grid0 = m.embed(x)
    with torch.no_grad():
        blk0 = m.blocks[0](grid0.x)
        dropped = ~(blk0[:, 1:, 0] > 0)
        lvl2 = out['outs'][1].flatten(2).transpose(1, 2)
        torch.testing.assert_close(lvl2[dropped], m.norm(blk0)[:, 1:][dropped])


def test_stack_of_clustering_and_packing_restores_in_reverse():
    """cluster, then pack the clusters: the output level is unpacked (the
    packed state's own undo) and then reconstructed (the Expedit output
    restorer), in that order."""
    m = tiny_vit(out_indices=(2, ), depth=3, norm_outputs='all', token_stages=[
        dict(type='TokenClustering', after_block=0, grid=(2, 3)),
        dict(type='_PackStage', after_block=1),
        dict(type='TokenReconstruction', k=3)
    ])
    x = torch.randn(2, 3, 32, 40)
    with torch.no_grad():
        out = m.forward_features(x)
        grid = out['grid']
        cluster, packed = grid.restores
        assert isinstance(cluster, ExpeditState)
        assert isinstance(packed, PackedTokens)
        normed = m.norm(grid.x)
        clusters = packed.undo(normed[:, 1:], m.norm)  # (B, 6, C)
        full = reconstruct_tokens(clusters, cluster.feat_before,
                                  cluster.feat_after, k=3)
    ref = full.transpose(1, 2).reshape(2, 24, 4, 5)
    torch.testing.assert_close(out['outs'][0], ref)


@MODELS.register_module(force=True)
class _DropStage(BaseTokenStage):
    """Test stage: drops every second patch token, with no way back."""

    def forward(self, grid, block=None, keys=None):
        x = torch.cat([grid.prefix, grid.patches[:, ::2]], 1)
        return grid.push(RestoreState(), x=x)


def test_unwinding_stops_at_a_regular_grid_or_fails():
    # cluster, then pack: unpacking (the state's own undo) reaches the
    # cluster grid, which has no restorer: outputs on the (2, 2) grid
    m = tiny_vit(out_indices=(2, ), token_stages=[
        dict(type='TokenClustering', after_block=0, grid=(2, 2)),
        dict(type='_PackStage', after_block=1)])
    assert m(torch.randn(1, 3, 32, 32))[0].shape == (1, 24, 2, 2)
    m = tiny_vit(out_indices=(2, ), token_stages=[
        dict(type='_DropStage', after_block=0)])
    with pytest.raises(RuntimeError, match='no output restorer'):
        m(torch.randn(1, 3, 32, 32))
    m = tiny_vit(token_stages=[
        dict(type='_PackStage', after_block=0),
        dict(type='TokenClustering', after_block=1, grid=(2, 2))])
    with pytest.raises(RuntimeError, match='no regular grid'):
        m(torch.randn(1, 3, 32, 32))


# ------------------------------------------------------- stage positions
def test_after_block_list_calls_the_same_instance():
    m = tiny_vit(depth=3, token_stages=[
        dict(type='_RecordingStage', after_block=[0, -1])])
    assert len(m.token_stages) == 1
    stage = m.token_stages[0]
    plain = tiny_vit(depth=3)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = m(x)[0]  # level 2 is taken before the stage after block 2
        t = plain.embed(x).x
        t = plain.blocks[0](t) + 1.0
        t = plain.norm(plain.blocks[2](plain.blocks[1](t)))
    assert [c[0] for c in stage.calls] == [0, 2]
    assert all(c[1] is None for c in stage.calls)
    ref = t[:, 1:].transpose(1, 2).reshape(1, 24, 4, 4)
    torch.testing.assert_close(out, ref)


def test_attn_position_runs_between_attention_and_mlp_with_keys():
    m = tiny_vit(depth=2, token_stages=[
        dict(type='_RecordingStage', after_block=1, position='attn')])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = m.forward_features(x, qkv_layers=[1], token_layers=[1])
        t = m.blocks[0](m.embed(x).x)
        a, (q, k, v) = m.blocks[1].attention_residual(t, return_qkv=True)
        ref = m.blocks[1].mlp_residual(a + 1.0)
    (block, keys), = m.token_stages[0].calls
    assert block == 1
    torch.testing.assert_close(keys, k)
    torch.testing.assert_close(feats['qkv'][1][1], k)
    torch.testing.assert_close(feats['tokens'][1], ref)


def test_set_token_stages_removes_and_installs():
    m = tiny_vit(token_stages=[dict(type='_RecordingStage', after_block=0)])
    plain = tiny_vit()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(m(x)[0], plain(x)[0])
        m.set_token_stages([])
        assert len(m.token_stages) == 0 and m.output_restorers == []
        torch.testing.assert_close(m(x)[0], plain(x)[0])
        m.set_token_stages([dict(type='_RecordingStage', after_block=1)])
        assert m.token_stages[0].after_block == 1


# -------------------------------------------------- activation checkpoint
def test_with_cp_gives_the_same_gradients():
    x = torch.randn(2, 3, 32, 40)
    grads = {}
    for cp in (False, True, [1]):
        m = tiny_vit(with_cp=cp, out_indices=(1, 2), layer_scale=0.1,
                     token_stages=[dict(type='_RecordingStage',
                                        after_block=1, position='attn')])
        m.train()
        outs = m(x)
        loss = sum((o**2).mean() for o in outs)
        loss.backward()
        grads[str(cp)] = {n: p.grad.clone() for n, p in m.named_parameters()}
    for cp in ('True', '[1]'):
        for n, g in grads['False'].items():
            torch.testing.assert_close(grads[cp][n], g, msg=n)
    with pytest.raises(ValueError, match='with_cp'):
        tiny_vit(with_cp=[5])
