"""SegmenterMaskHead: parameter names of the official Segmenter decoder and
the forward against a direct re-statement."""
import torch
import torch.nn.functional as F

from vtseg.registry import MODELS


def build(n_cls=5, d_enc=16, d_model=32, n_layers=2):
    torch.manual_seed(0)
    head = MODELS.build(dict(type='SegmenterMaskHead', in_channels=d_enc,
                             num_classes=n_cls, d_model=d_model,
                             n_layers=n_layers, n_heads=2, d_ff=48,
                             dropout=0.0))
    head.init_weights()
    return head.eval()


def test_parameter_names_match_segmenter():
    head = build()
    expected = {'cls_emb', 'proj_dec.weight', 'proj_dec.bias', 'proj_patch',
                'proj_classes', 'decoder_norm.weight', 'decoder_norm.bias',
                'mask_norm.weight', 'mask_norm.bias'}
    for i in range(2):
        expected |= {f'blocks.{i}.{k}' for k in (
            'norm1.weight', 'norm1.bias', 'attn.qkv.weight',
            'attn.qkv.bias', 'attn.proj.weight', 'attn.proj.bias',
            'norm2.weight', 'norm2.bias', 'mlp.fc1.weight', 'mlp.fc1.bias',
            'mlp.fc2.weight', 'mlp.fc2.bias')}
    assert set(head.state_dict()) == expected
    assert head.state_dict()['blocks.0.mlp.fc1.weight'].shape == (48, 32)


def test_forward_matches_restatement():
    head = build()
    x = torch.randn(2, 16, 3, 5)  # any (h, w) grid
    with torch.no_grad():
        out = head([x])
        # Segmenter's MaskTransformer.forward, written out
        t = x.flatten(2).transpose(1, 2) @ head.proj_dec.weight.t() + \
            head.proj_dec.bias
        t = torch.cat([t, head.cls_emb.expand(2, -1, -1)], 1)
        for blk in head.blocks:
            h = F.layer_norm(t, (32, ), blk.norm1.weight, blk.norm1.bias,
                             1e-5)
            B, T, C = h.shape
            qkv = (h @ blk.attn.qkv.weight.t() + blk.attn.qkv.bias).reshape(
                B, T, 3, 2, C // 2).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            a = ((q @ k.transpose(-2, -1)) * (C // 2)**-0.5).softmax(-1)
            h = (a @ v).transpose(1, 2).reshape(B, T, C)
            t = t + blk.attn.proj(h)
            h = F.layer_norm(t, (32, ), blk.norm2.weight, blk.norm2.bias,
                             1e-5)
            t = t + blk.mlp.fc2(F.gelu(blk.mlp.fc1(h)))
        t = head.decoder_norm(t)
        p = t[:, :15] @ head.proj_patch
        c = t[:, 15:] @ head.proj_classes
        p = p / p.norm(dim=-1, keepdim=True)
        c = c / c.norm(dim=-1, keepdim=True)
        m = head.mask_norm(p @ c.transpose(1, 2))
        ref = m.transpose(1, 2).reshape(2, 5, 3, 5)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def fake_segmenter_checkpoint(D=64, depth=2, n_cls=5, grid=4, p=16):
    """State dict in the official rstrudel/segmenter layout (tiny sizes)."""
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g) * 0.02  # noqa: E731
    sd = {'encoder.patch_embed.proj.weight': r(D, 3, p, p),
          'encoder.patch_embed.proj.bias': r(D),
          'encoder.cls_token': r(1, 1, D),
          'encoder.pos_embed': r(1, 1 + grid * grid, D),
          'encoder.norm.weight': 1 + r(D), 'encoder.norm.bias': r(D),
          'encoder.head.weight': r(1000, D), 'encoder.head.bias': r(1000)}
    blk = {'norm1.weight': (D, ), 'norm1.bias': (D, ),
           'attn.qkv.weight': (3 * D, D), 'attn.qkv.bias': (3 * D, ),
           'attn.proj.weight': (D, D), 'attn.proj.bias': (D, ),
           'norm2.weight': (D, ), 'norm2.bias': (D, ),
           'mlp.fc1.weight': (4 * D, D), 'mlp.fc1.bias': (4 * D, ),
           'mlp.fc2.weight': (D, 4 * D), 'mlp.fc2.bias': (D, )}
    for i in range(depth):
        for k, s in blk.items():
            sd[f'encoder.blocks.{i}.{k}'] = r(*s)
            if i < 2:
                sd[f'decoder.blocks.{i}.{k}'] = r(*s)
    sd.update({'decoder.cls_emb': r(1, n_cls, D),
               'decoder.proj_dec.weight': r(D, D),
               'decoder.proj_dec.bias': r(D),
               'decoder.proj_patch': r(D, D),
               'decoder.proj_classes': r(D, D),
               'decoder.decoder_norm.weight': 1 + r(D),
               'decoder.decoder_norm.bias': r(D),
               'decoder.mask_norm.weight': 1 + r(n_cls),
               'decoder.mask_norm.bias': r(n_cls)})
    return {'model': sd}


def test_converted_segmenter_loads_into_expedit_config():
    """The Expedit Segmenter configs' model (shrunk) loads a converted
    official-layout checkpoint strictly, plain and faithful."""
    import copy

    from mmengine.config import Config

    from vtseg.converters.ckpt_convert import convert_segmenter
    conv = convert_segmenter(fake_segmenter_checkpoint(), num_heads=1)
    for name in ('expedit_segmenter_vit-l16_ade20k-640.py',
                 'expedit_segmenter_vit-l16_ade20k-640_faithful.py'):
        cfg = Config.fromfile(f'configs/expedit/{name}')
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.backbone.update(img_size=64, embed_dims=64, depth=2,
                                  num_heads=1)
        for st in model_cfg.backbone.token_stages:
            st['after_block'] = min(st['after_block'] or 0, 0) \
                if st['after_block'] is not None else None
            if 'grid' in st:
                st['grid'] = 4 if isinstance(st['grid'], int) else (2, 2)
            if 'k' in st:
                st['k'] = 3
        model_cfg.decode_head.update(in_channels=64, d_model=64,
                                     num_classes=5, n_heads=1, d_ff=256)
        model_cfg.test_cfg = dict(mode='whole')
        model = MODELS.build(model_cfg)
        model.load_state_dict(conv.state_dict, strict=True)
        model.eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, 64, 64), mode='tensor')
        # faithful: the head sees the cluster grid; default: the full grid
        expect = (2, 2) if 'faithful' in name else (4, 4)
        assert tuple(out.shape[-2:]) == expect
