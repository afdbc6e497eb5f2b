"""WindowedAttention (ViTDet windows + decomposed relative positions)
against a straightforward loop reference, and inside the ViT."""
import math

import pytest
import torch
import torch.nn.functional as F

import vtseg  # noqa: F401
from vtseg.models import ViT
from vtseg.models.layers import (Attention, WindowedAttention,
                                 decomposed_rel_pos_bias, rel_pos_lookup,
                                 resize_rel_pos, window_partition,
                                 window_unpartition, window_valid_mask)
from vtseg.models.reducers import BaseTokenStage, expedit_token_stages
from vtseg.models.utils import TokenGrid
from vtseg.registry import MODELS

TOL = dict(rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ reference
def ref_interp(table, length):
    """Linear interpolation, align_corners=False, written out by hand."""
    L = table.shape[0]
    if L == length:
        return table
    rows = []
    for i in range(length):
        src = max((i + 0.5) * L / length - 0.5, 0.0)
        i0 = min(int(math.floor(src)), L - 1)
        i1 = min(i0 + 1, L - 1)
        w = src - i0
        rows.append(table[i0] * (1 - w) + table[i1] * w)
    return torch.stack(rows)


def ref_bias(q, rh, rw, qpos, kpos, size):
    """Bias of one query (heads, d) to keys at kpos, both on a grid of
    ``size`` (equal query / key sizes): q . Rh[dh] + q . Rw[dw]."""
    Sh, Sw = size
    th, tw = ref_interp(rh, 2 * Sh - 1), ref_interp(rw, 2 * Sw - 1)
    out = []
    for (kh, kw) in kpos:
        dh, dw = qpos[0] - kh + Sh - 1, qpos[1] - kw + Sw - 1
        out.append((q * th[dh]).sum(-1) + (q * tw[dw]).sum(-1))
    return torch.stack(out, dim=-1)  # (heads, n_keys)


def ref_attention(attn, x, hw, P, key_mask=None, attn_bias=None):
    """Loop over images, windows and queries; explicit softmax."""
    B, T, C = x.shape
    nh = attn.num_heads
    d = C // nh
    qkv = x @ attn.qkv.weight.T
    if attn.qkv.bias is not None:
        qkv = qkv + attn.qkv.bias
    q, k, v = (t.reshape(B, T, nh, d) for t in qkv.split(C, dim=-1))
    H, W = hw
    ws = attn.window_size
    rel = getattr(attn, 'use_rel_pos', False)
    pos = [None] * P + [(i // W, i % W) for i in range(H * W)]
    out = torch.zeros(B, T, nh, d)

    def attend(b, qi, keys, bias):
        logits = torch.einsum('hd,khd->hk', q[b, qi], k[b, keys]) / d**0.5
        logits = logits + bias
        a = logits.softmax(-1)
        out[b, qi] = torch.einsum('hk,khd->hd', a, v[b, keys])

    for b in range(B):
        # prefix queries: every token, no relative position
        for qi in range(P):
            keys = list(range(T))
            bias = torch.zeros(nh, T)
            if not ws:
                if attn_bias is not None:
                    bias = bias + attn_bias.expand(B, nh, T, T)[b, :, qi]
                if key_mask is not None:
                    keys = [j for j in keys if key_mask[b, j]]
                    bias = bias[:, keys]
            attend(b, qi, keys, bias)
        if ws:
            for wy in range(math.ceil(H / ws)):
                for wx in range(math.ceil(W / ws)):
                    win = [P + r * W + c
                           for r in range(wy * ws, min(H, wy * ws + ws))
                           for c in range(wx * ws, min(W, wx * ws + ws))]
                    keys = list(range(P)) + win
                    for qi in win:
                        bias = torch.zeros(nh, len(keys))
                        if rel:
                            lq = (pos[qi][0] - wy * ws, pos[qi][1] - wx * ws)
                            lk = [(pos[j][0] - wy * ws, pos[j][1] - wx * ws)
                                  for j in win]
                            bias[:, P:] = ref_bias(q[b, qi], attn.rel_pos_h,
                                                   attn.rel_pos_w, lq, lk,
                                                   (ws, ws))
                        attend(b, qi, keys, bias)
        else:
            for qi in range(P, T):
                bias = torch.zeros(nh, T)
                if rel:
                    bias[:, P:] = ref_bias(q[b, qi], attn.rel_pos_h,
                                           attn.rel_pos_w, pos[qi],
                                           pos[P:], (H, W))
                if attn_bias is not None:
                    bias = bias + attn_bias.expand(B, nh, T, T)[b, :, qi]
                keys = list(range(T))
                if key_mask is not None:
                    keys = [j for j in keys if key_mask[b, j]]
                    bias = bias[:, keys]
                attend(b, qi, keys, bias)
    return attn.proj(out.reshape(B, T, C))


def make_attn(window_size, use_rel_pos=True, input_size=(4, 4), dim=24,
              heads=3, seed=0):
    torch.manual_seed(seed)
    a = WindowedAttention(dim, heads, window_size=window_size,
                          use_rel_pos=use_rel_pos, rel_pos_zero_init=False,
                          input_size=input_size)
    return a.eval()


# ------------------------------------------------------------ functions
def test_window_partition_roundtrip_and_mask():
    x = torch.randn(2, 5, 7, 4)
    win, pad_hw = window_partition(x, 3)
    assert pad_hw == (6, 9) and win.shape == (2 * 2 * 3, 3, 3, 4)
    # window 1 of image 0: rows 0..2, cols 3..5
    torch.testing.assert_close(win[1], x[0, 0:3, 3:6])
    # bottom-right window of image 1 is zero-padded
    assert torch.equal(win[-1][2:], torch.zeros(1, 3, 4))
    assert torch.equal(win[-1][:, 1:], torch.zeros(3, 2, 4))
    torch.testing.assert_close(window_unpartition(win, 3, pad_hw, (5, 7)), x)
    valid = window_valid_mask((5, 7), 3)
    ones = torch.ones(2, 5, 7, 1)
    ref = window_partition(ones, 3)[0].reshape(-1, 9)[:6] > 0
    assert torch.equal(valid, ref)


def test_rel_pos_lookup_scaling_and_resize():
    torch.manual_seed(0)
    table = torch.randn(7, 5)
    # equal sizes, table of the right length: entry i - j + size - 1
    r = rel_pos_lookup(4, 4, table)
    for i in range(4):
        for j in range(4):
            torch.testing.assert_close(r[i, j], table[i - j + 3])
    # unequal sizes: detectron2 coordinate scaling on the longer axis
    for qs, ks in ((3, 6), (6, 2), (5, 3)):
        s = max(qs, ks)
        t = ref_interp(table, 2 * s - 1)
        r = rel_pos_lookup(qs, ks, table)
        for i in range(qs):
            for j in range(ks):
                idx = math.floor(i * max(ks / qs, 1.0) - j * max(qs / ks, 1.0)
                                 + (ks - 1) * max(qs / ks, 1.0) + 1e-9)
                torch.testing.assert_close(r[i, j], t[idx])
    torch.testing.assert_close(resize_rel_pos(table, 11),
                               ref_interp(table, 11))
    assert resize_rel_pos(table, 7) is table


def test_decomposed_bias_formula():
    torch.manual_seed(0)
    q = torch.randn(2, 3, 2 * 3, 4)
    rh, rw = torch.randn(3, 4), torch.randn(5, 4)
    bias = decomposed_rel_pos_bias(q, rh, rw, (2, 3), (2, 3))
    assert bias.shape == (2, 3, 6, 6)
    for i in range(6):
        ref = ref_bias(q[:, :, i], rh, rw, (i // 3, i % 3),
                       [(j // 3, j % 3) for j in range(6)], (2, 3))
        torch.testing.assert_close(bias[:, :, i], ref)


# ------------------------------------------------------------ module
@pytest.mark.parametrize('hw,ws', [((5, 7), 3), ((6, 6), 3), ((3, 4), 5)])
@pytest.mark.parametrize('n_prefix', [0, 1, 3])
@pytest.mark.parametrize('use_rel_pos', [True, False])
def test_windowed_matches_reference(hw, ws, n_prefix, use_rel_pos):
    a = make_attn(ws, use_rel_pos)
    T = n_prefix + hw[0] * hw[1]
    x = torch.randn(2, T, 24)
    with torch.no_grad():
        out = a(x, hw=hw, n_prefix=n_prefix)
        ref = ref_attention(a, x, hw, n_prefix)
    torch.testing.assert_close(out, ref, **TOL)


@pytest.mark.parametrize('n_prefix', [0, 1])
def test_vitdet_padding_mode(n_prefix):
    """mask_padding=False: zero tokens padded before the projection are
    keys / values of the border windows, as in ViTDet."""
    a = make_attn(3)
    a.mask_padding = False
    P = n_prefix
    x = torch.randn(2, P + 35, 24)
    padded = F.pad(x[:, P:].reshape(2, 5, 7, 24), (0, 0, 0, 2, 0, 1))
    xp = torch.cat([x[:, :P], padded.reshape(2, 54, 24)], 1)
    with torch.no_grad():
        out, (q, k, v) = a(x, hw=(5, 7), n_prefix=P, return_qkv=True)
        ref = ref_attention(a, xp, (6, 9), P)[:, P:].reshape(2, 6, 9, 24)
        torch.testing.assert_close(out[:, P:].reshape(2, 5, 7, 24),
                                   ref[:, :5, :7], **TOL)
        q0, k0, v0 = a.project_qkv(x)
        torch.testing.assert_close(k, k0)
        a.mask_padding = True
        masked = a(x, hw=(5, 7), n_prefix=P)
        # prefix queries see the real tokens only in both modes
        torch.testing.assert_close(out[:, :P], masked[:, :P], **TOL)
        assert not torch.allclose(out, masked)


@pytest.mark.parametrize('n_prefix', [0, 2])
def test_global_rel_pos_interpolated_tables(n_prefix):
    a = make_attn(0, input_size=(4, 4))  # tables 7 x d, grid 5 x 7
    assert a.rel_pos_h.shape == (7, 8) and a.rel_pos_w.shape == (7, 8)
    hw = (5, 7)
    T = n_prefix + 35
    x = torch.randn(2, T, 24)
    key_mask = torch.ones(2, T, dtype=torch.bool)
    key_mask[1, n_prefix + 4] = False
    attn_bias = torch.randn(2, 1, 1, T)
    with torch.no_grad():
        torch.testing.assert_close(a(x, hw=hw, n_prefix=n_prefix),
                                   ref_attention(a, x, hw, n_prefix), **TOL)
        torch.testing.assert_close(
            a(x, key_mask, attn_bias, hw, n_prefix),
            ref_attention(a, x, hw, n_prefix, key_mask, attn_bias), **TOL)
        torch.testing.assert_close(
            a(x, key_mask, None, hw, n_prefix),
            ref_attention(a, x, hw, n_prefix, key_mask), **TOL)


def test_window0_without_rel_pos_is_vit_attention():
    a = make_attn(0, use_rel_pos=False, input_size=None)
    assert not any('rel_pos' in n for n, _ in a.named_parameters())
    b = Attention(24, 3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 13, 24)
    key_mask = torch.rand(2, 13) > 0.3
    key_mask[:, 0] = True
    bias = torch.randn(2, 3, 13, 13)
    with torch.no_grad():
        for args in ((None, None), (key_mask, None), (key_mask, bias)):
            # hw is not needed without relative positions
            torch.testing.assert_close(a(x, *args), b(x, *args))
            torch.testing.assert_close(a(x, *args, (3, 4), 1),
                                       b(x, *args, (3, 4), 1))


def test_return_qkv_in_token_layout():
    a = make_attn(3)
    x = torch.randn(2, 1 + 35, 24)
    with torch.no_grad():
        out, (q, k, v) = a(x, hw=(5, 7), n_prefix=1, return_qkv=True)
        q0, k0, v0 = a.project_qkv(x)
        torch.testing.assert_close(out, a(x, hw=(5, 7), n_prefix=1))
    assert q.shape == k.shape == v.shape == (2, 3, 36, 8)
    for t, r in ((q, q0), (k, k0), (v, v0)):
        torch.testing.assert_close(t, r)


def test_reset_rel_pos_and_vit_init():
    a = make_attn(3)
    assert a.rel_pos_h.abs().sum() > 0
    a.rel_pos_zero_init = True
    a.reset_rel_pos()
    assert a.rel_pos_h.abs().sum() == 0 and a.rel_pos_w.abs().sum() == 0
    vit = ViT(img_size=32, patch_size=8, embed_dims=24, depth=2,
              num_heads=3, window_size=2, use_rel_pos=True,
              rel_pos_zero_init=False)
    vit.init_weights()
    assert vit.blocks[0].attn.rel_pos_h.std() < 0.05
    assert vit.blocks[0].attn.rel_pos_h.abs().sum() > 0
    vit = ViT(img_size=32, patch_size=8, embed_dims=24, depth=2,
              num_heads=3, window_size=2, global_blocks=[1],
              use_rel_pos=True)
    for blk in vit.blocks:
        torch.nn.init.normal_(blk.attn.rel_pos_h)
    vit.init_weights()
    assert all(blk.attn.rel_pos_h.abs().sum() == 0 for blk in vit.blocks)
    # window tables (2 * 2 - 1) and the global block's (2 * 4 - 1)
    assert vit.blocks[0].attn.rel_pos_h.shape == (3, 8)
    assert vit.blocks[1].attn.rel_pos_w.shape == (7, 8)


def test_errors():
    a = make_attn(3)
    x = torch.randn(1, 1 + 35, 24)
    mask = torch.ones(1, 36, dtype=torch.bool)
    with pytest.raises(ValueError, match=r'window_size=3.*key_mask'):
        a(x, mask, None, (5, 7), 1)
    with pytest.raises(ValueError, match=r'window_size=3.*attn_bias'):
        a(x, None, torch.zeros(1, 1, 1, 36), (5, 7), 1)
    with pytest.raises(ValueError, match='hw=None'):
        a(x, n_prefix=1)
    with pytest.raises(ValueError, match='do not match'):
        a(x, hw=(5, 6), n_prefix=1)
    with pytest.raises(ValueError, match='hw=None'):
        make_attn(0)(x, n_prefix=1)  # global block with relative positions
    with pytest.raises(ValueError, match='input_size'):
        WindowedAttention(24, 3, window_size=0, use_rel_pos=True)
    with pytest.raises(ValueError, match='window_size'):
        WindowedAttention(24, 3, window_size=-1)


# ------------------------------------------------------------ in the ViT
def win_vit(**kw):
    torch.manual_seed(0)
    cfg = dict(img_size=32, patch_size=8, embed_dims=24, depth=4,
               num_heads=3, window_size=2, global_blocks=[1, 3],
               use_rel_pos=True, rel_pos_zero_init=False, out_indices=-1)
    cfg.update(kw)
    m = ViT(**cfg)
    m.init_weights()
    return m.eval()


def test_vit_windowed_forward_matches_reference():
    m = win_vit(num_register_tokens=1)
    assert [type(b.attn).__name__ for b in m.blocks] == \
        ['WindowedAttention'] * 4
    assert [b.attn.window_size for b in m.blocks] == [2, 0, 2, 0]
    x = torch.randn(2, 3, 40, 56)  # 5 x 7 patches: not divisible by 2
    with torch.no_grad():
        feats = m.forward_features(x, token_layers=[3])
        t = m.embed(x).x
        for blk in m.blocks:
            t = t + ref_attention(blk.attn, blk.norm1(t), (5, 7), 2)
            t = t + blk.mlp(blk.norm2(t))
        torch.testing.assert_close(feats['tokens'][3], t, **TOL)
        assert feats['outs'][0].shape == (2, 24, 5, 7)
        # batch of 2 = each image alone
        one = m(x[1:])[0]
        torch.testing.assert_close(feats['outs'][0][1:], one, **TOL)


def test_vit_windowed_checkpointing_trains():
    m = win_vit(with_cp=True).train()
    x = torch.randn(2, 3, 40, 56)
    m(x)[0].sum().backward()
    assert m.blocks[0].attn.rel_pos_h.grad is not None
    assert m.blocks[1].attn.rel_pos_w.grad.abs().sum() > 0


@MODELS.register_module(force=True)
class _WinTestMidStage(BaseTokenStage):
    """Test stage that runs between attention and MLP (does nothing)."""

    def forward(self, grid, block=None, keys=None):
        return grid


@MODELS.register_module(force=True)
class _WinTestPruneStage(BaseTokenStage):
    """Test stage that marks the last patch token as pruned."""

    def forward(self, grid: TokenGrid, block=None, keys=None) -> TokenGrid:
        valid = torch.ones(grid.x.shape[0], grid.num_tokens, dtype=torch.bool,
                           device=grid.x.device)
        valid[:, -1] = False
        return grid.replace(valid=valid)


def test_vit_refuses_token_stages_in_windowed_blocks():
    with pytest.raises(ValueError, match='windowed attention'):
        win_vit(token_stages=[dict(type='_WinTestMidStage', after_block=0,
                                   position='attn')])
    # position='attn' in a global block is fine
    win_vit(token_stages=[dict(type='_WinTestMidStage', after_block=1,
                               position='attn')])
    # a pruned (irregular) token set entering windowed block 2
    m = win_vit(token_stages=[dict(type='_WinTestPruneStage',
                                   after_block=1)])
    with pytest.raises(RuntimeError, match='block 2 uses windowed'):
        m(torch.randn(1, 3, 32, 32))
    # ... and entering a global block with relative positions
    m = win_vit(window_size=0, token_stages=[dict(
        type='_WinTestPruneStage', after_block=1)])
    with pytest.raises(ValueError, match='hw=None'):
        m(torch.randn(1, 3, 32, 32))


def test_vit_windowed_blocks_on_expedit_cluster_grid():
    kw = dict(img_size=64, embed_dims=32, num_heads=2, window_size=2,
              global_blocks=[3])
    plain = win_vit(**kw)
    # identity clustering (cluster grid = token grid, sharp temperatures):
    # the windowed blocks after clustering see the same 8 x 8 layout
    ident = win_vit(token_stages=expedit_token_stages(
        cluster_layer=1, grid=(8, 8), k=4, cluster_temperature=1e6,
        reconstruct_temperature=1e6), **kw)
    ident.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ident(x)[0], plain(x)[0], rtol=1e-4,
                                   atol=1e-5)
    # a real 3 x 5 cluster grid of the 6 x 10 tokens (not divisible by 2)
    fast = win_vit(token_stages=expedit_token_stages(
        cluster_layer=1, grid=(3, 5), k=3), **kw)
    fast.load_state_dict(plain.state_dict())
    seen = {}

    def hook(mod, args):
        seen['hw'] = args[3]

    fast.blocks[2].attn.register_forward_pre_hook(hook)
    with torch.no_grad():
        out = fast(torch.randn(2, 3, 48, 80))[0]
    assert seen['hw'] == (3, 5)
    assert out.shape == (2, 32, 6, 10) and torch.isfinite(out).all()
