"""The one ViT backbone: shapes, numerics, extension points, loading."""
import pytest
import torch
import torch.nn.functional as F

import vtseg  # noqa: F401
from vtseg.models import ViT
from vtseg.models.reducers import BaseTokenStage
from vtseg.models.utils import RestoreState, TokenGrid
from vtseg.models.utils.checkpoint import (CheckpointMismatchError,
                                           load_pretrained_strict)
from vtseg.registry import MODELS


def tiny_vit(**kw):
    cfg = dict(img_size=32, patch_size=8, embed_dims=24, depth=3,
               num_heads=3, out_indices=(0, 2))
    cfg.update(kw)
    m = ViT(**cfg)
    m.init_weights()
    return m.eval()


@pytest.mark.parametrize('patch', [8, 14, 16])
def test_output_shapes_any_size(patch):
    m = tiny_vit(patch_size=patch, img_size=4 * patch)
    x = torch.randn(2, 3, 3 * patch + 5, 5 * patch)  # pad to 4 x 5 patches
    outs = m(x)
    assert [o.shape for o in outs] == [(2, 24, 4, 5)] * 2


def reference_block(blk, x):
    """Straightforward pre-norm block with explicit softmax attention."""
    B, T, C = x.shape
    h = blk.attn.num_heads
    y = blk.norm1(x)
    qkv = y @ blk.attn.qkv.weight.T + blk.attn.qkv.bias
    q, k, v = qkv.split(C, dim=-1)
    q = q.reshape(B, T, h, -1).transpose(1, 2)
    k = k.reshape(B, T, h, -1).transpose(1, 2)
    v = v.reshape(B, T, h, -1).transpose(1, 2)
    a = (q @ k.transpose(-2, -1) / (C // h)**0.5).softmax(-1)
    o = (a @ v).transpose(1, 2).reshape(B, T, C)
    x = x + blk.ls1(blk.attn.proj(o))
    return x + blk.ls2(blk.mlp(blk.norm2(x))), k


def test_blocks_match_reference_and_qkv():
    m = tiny_vit(layer_scale=0.5, out_indices=-1)
    x = torch.randn(2, 3, 24, 40)
    feats = m.forward_features(x, qkv_layers=[-1], token_layers=[0, 2])
    t = m.embed(x).x
    for i, blk in enumerate(m.blocks):
        t, k = reference_block(blk, t)
        if i in (0, 2):
            torch.testing.assert_close(feats['tokens'][i], t, rtol=1e-5,
                                       atol=1e-5)
    torch.testing.assert_close(feats['qkv'][2][1], k, rtol=1e-5, atol=1e-5)
    out = m.norm(t)[:, 1:].transpose(1, 2).reshape(2, 24, 3, 5)
    torch.testing.assert_close(feats['outs'][0], out, rtol=1e-5, atol=1e-5)


def test_pos_embed_bicubic_resize():
    m = tiny_vit(img_size=32)
    torch.nn.init.normal_(m.pos_embed)
    x = torch.zeros(1, 3, 16, 48)  # 2 x 6 grid from a 4 x 4 table
    grid = m.embed(x)
    table = m.pos_embed[:, 1:].reshape(1, 4, 4, 24).permute(0, 3, 1, 2)
    ref = F.interpolate(table, size=(2, 6), mode='bicubic',
                        align_corners=False).flatten(2).transpose(1, 2)
    patch_bias = m.patch_embed.proj.bias
    torch.testing.assert_close(grid.x[:, 1:] - patch_bias, ref)
    # native size: no interpolation
    grid = m.embed(torch.zeros(1, 3, 32, 32))
    torch.testing.assert_close(grid.x[:, 1:] - patch_bias, m.pos_embed[:, 1:])


def test_no_cls_and_registers():
    m = tiny_vit(with_cls_token=False, pos_embed_with_cls=False)
    assert m.n_prefix == 0 and m.pos_embed.shape[1] == 16
    assert m(torch.randn(1, 3, 32, 32))[0].shape == (1, 24, 4, 4)
    m = tiny_vit(num_register_tokens=2)
    feats = m.forward_features(torch.randn(1, 3, 32, 32), token_layers=[0])
    assert feats['tokens'][0].shape == (1, 1 + 2 + 16, 24)
    with pytest.raises(ValueError, match='pos_embed_with_cls'):
        tiny_vit(with_cls_token=False)


class _Pooled(RestoreState):
    """Restore state of the test pooling stage (no default undo)."""
    owner = '_PoolStage'


@MODELS.register_module(force=True)
class _PoolStage(BaseTokenStage):
    """Test stage: 2x2 average pooling of the patch tokens."""

    def forward(self, grid: TokenGrid, block=None, keys=None) -> TokenGrid:
        H, W = grid.layout
        p = grid.patches.transpose(1, 2).reshape(-1, grid.x.shape[2], H, W)
        p = F.avg_pool2d(p, 2)
        h, w = p.shape[-2:]
        x = torch.cat([grid.prefix, p.flatten(2).transpose(1, 2)], 1)
        return grid.push(_Pooled(), x=x, reduced_hw=(h, w))


@MODELS.register_module(force=True)
class _UpsampleRestorer(BaseTokenStage):
    """Test restorer: nearest upsampling back to the full grid."""

    def restores(self, state):
        return isinstance(state, _Pooled)

    def restore(self, grid, tokens):
        h, w = grid.reduced_hw
        C = tokens.shape[2]
        p = tokens[:, grid.n_prefix:].transpose(1, 2).reshape(-1, C, h, w)
        p = F.interpolate(p, size=grid.hw, mode='nearest')
        full = torch.cat([tokens[:, :grid.n_prefix],
                          p.flatten(2).transpose(1, 2)], 1)
        grid = grid.pop(full)
        return grid, full


def test_token_stages_reduce_and_restore():
    x = torch.randn(2, 3, 32, 32)
    plain = tiny_vit(out_indices=(0, 1, 2))
    reduced = tiny_vit(out_indices=(0, 1, 2),
                       token_stages=[dict(type='_PoolStage', after_block=0)])
    reduced.load_state_dict(plain.state_dict())
    p_outs, r_outs = plain(x), reduced(x)
    # level 0 is taken before the stage: unchanged
    torch.testing.assert_close(p_outs[0], r_outs[0])
    # no restorer: reduced levels come out on the (2, 2) grid
    assert r_outs[1].shape == (2, 24, 2, 2) and r_outs[2].shape[-2:] == (2, 2)
    restored = tiny_vit(out_indices=(0, 1, 2),
                        token_stages=[dict(type='_PoolStage', after_block=0),
                                      dict(type='_UpsampleRestorer')])
    restored.load_state_dict(plain.state_dict())
    outs = restored(x)
    assert [o.shape[-2:] for o in outs] == [(4, 4)] * 3
    torch.testing.assert_close(outs[1][..., ::2, ::2], r_outs[1])


def test_stage_index_validation():
    with pytest.raises(ValueError, match='after_block'):
        tiny_vit(token_stages=[dict(type='_PoolStage', after_block=7)])
    with pytest.raises(ValueError, match='after_block'):
        tiny_vit(token_stages=[dict(type='_PoolStage', after_block=[0, 9])])
    with pytest.raises(ValueError, match='position'):
        tiny_vit(token_stages=[dict(type='_PoolStage', after_block=0,
                                    position='mlp')])


def test_pruning_mask_isolates_tokens():
    m = tiny_vit(out_indices=-1)
    x = torch.randn(1, 3, 32, 32)
    grid = m.embed(x)
    keep = torch.ones(1, 16, dtype=torch.bool)
    keep[0, 5] = False
    key_mask = torch.cat([torch.ones(1, 1, dtype=torch.bool), keep], 1)
    out1 = m.blocks[0](grid.x, key_mask)
    x2 = grid.x.clone()
    x2[0, 1 + 5] += 100.0  # a pruned token must not affect the others
    out2 = m.blocks[0](x2, key_mask)
    others = torch.ones(17, dtype=torch.bool)
    others[6] = False
    torch.testing.assert_close(out1[:, others], out2[:, others])


def test_frozen_blocks_stay_frozen():
    m = tiny_vit(frozen_blocks=2, drop_path_rate=0.5)
    m.train()
    assert not m.patch_embed.proj.weight.requires_grad
    assert not m.pos_embed.requires_grad
    assert not any(p.requires_grad for p in m.blocks[1].parameters())
    assert all(p.requires_grad for p in m.blocks[2].parameters())
    assert not m.blocks[0].training and m.blocks[2].training


def test_frozen_prefix_route_is_exact(monkeypatch):
    """With frozen leading blocks the forward starts from ``frozen_prefix``
    (what FrozenBackboneCacheHook memoises): same outputs and gradients as
    the plain loop; it is skipped when a prefix block's output is needed."""
    x = torch.randn(2, 3, 37, 29)  # padded to 5 x 4 patches
    plain = tiny_vit(out_indices=(2, ))
    part = tiny_vit(out_indices=(2, ), frozen_blocks=2)
    part.load_state_dict(plain.state_dict())
    assert part.frozen_prefix_depth == 2 and plain.frozen_prefix_depth == 0
    assert part.frozen_prefix(x).shape == (2, 1 + 5 * 4, 24)
    for mode in (False, True):
        plain.train(mode)
        part.train(mode)
        out_p, out_f = plain(x)[0], part(x)[0]
        torch.testing.assert_close(out_f, out_p, rtol=0, atol=0)
    out_p.square().sum().backward()
    out_f.square().sum().backward()
    for (name, a), b in zip(plain.blocks[2].named_parameters(),
                            part.blocks[2].parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=name)
    # the route is used (and only then)
    calls = []
    orig = part.frozen_prefix
    monkeypatch.setattr(part, 'frozen_prefix',
                        lambda inp: calls.append(1) or orig(inp))
    part(x)
    assert calls == [1]
    part.forward_features(x, qkv_layers=[1])  # needs block 1's q, k, v
    part.forward_features(x, out_indices=[0, 2])
    assert calls == [1]
    # a token stage inside the frozen blocks ends the prefix there
    staged = tiny_vit(out_indices=(2, ), frozen_blocks=3,
                      token_stages=[dict(type='_PoolStage', after_block=1),
                                    dict(type='_UpsampleRestorer')])
    assert staged.frozen_prefix_depth == 1
    assert tiny_vit(frozen_blocks=-1).frozen_prefix_depth == 0


def test_strict_pretrained_loading(tmp_path):
    m = tiny_vit()
    sd = {'backbone.' + k: v for k, v in m.state_dict().items()}
    path = str(tmp_path / 'ok.pth')
    torch.save({'state_dict': sd}, path)
    m2 = tiny_vit()
    load_pretrained_strict(m2, path, prefix='backbone.')
    torch.testing.assert_close(m2.pos_embed, m.pos_embed)

    bad = dict(sd)
    bad['backbone.pos_embed'] = torch.zeros(1, 10, 24)
    bad.pop('backbone.norm.weight')
    bad['backbone.extra'] = torch.zeros(1)
    torch.save({'state_dict': bad}, str(tmp_path / 'bad.pth'))
    with pytest.raises(CheckpointMismatchError) as err:
        load_pretrained_strict(m2, str(tmp_path / 'bad.pth'),
                               prefix='backbone.')
    msg = str(err.value)
    assert 'norm.weight' in msg and 'extra' in msg and 'pos_embed' in msg


def test_init_cfg_pretrained(tmp_path):
    m = tiny_vit()
    path = str(tmp_path / 'bb.pth')
    torch.save({'state_dict': m.state_dict()}, path)
    m2 = ViT(img_size=32, patch_size=8, embed_dims=24, depth=3, num_heads=3,
             init_cfg=dict(type='Pretrained', checkpoint=path))
    m2.init_weights()
    torch.testing.assert_close(m2.blocks[1].attn.qkv.weight,
                               m.blocks[1].attn.qkv.weight)


def test_bad_config_errors():
    with pytest.raises(ValueError, match='divisible'):
        ViT(embed_dims=10, num_heads=3, depth=1)
    with pytest.raises(ValueError, match='out_indices'):
        ViT(embed_dims=12, num_heads=3, depth=2, out_indices=5)
