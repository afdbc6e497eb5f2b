"""ViTLayerDecayOptimizerConstructor: layer ids, lr / weight decay per
group, frozen parameters, errors."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper

from vtseg.engine import ViTLayerDecayOptimizerConstructor, vit_layer_id
from vtseg.registry import MODELS


def tiny_segmentor(frozen_blocks=-1):
    cfg = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', size=(32, 32)),
        backbone=dict(type='ViT', img_size=32, patch_size=8, embed_dims=24,
                      depth=3, num_heads=3, num_register_tokens=1,
                      window_size=2, global_blocks=[2], use_rel_pos=True,
                      frozen_blocks=frozen_blocks),
        # a decode head with its own ``blocks``: not decayed
        decode_head=dict(type='SegmenterMaskHead', in_channels=24,
                         num_classes=3, d_model=16, n_layers=2, n_heads=2),
        train_cfg=dict(), test_cfg=dict(mode='whole'))
    return MODELS.build(cfg)


def build(model, rate=0.5, wd=0.05, lr=1e-3, **paramwise):
    paramwise.setdefault('layer_decay_rate', rate)
    cfg = dict(constructor='ViTLayerDecayOptimizerConstructor',
               optimizer=dict(type='AdamW', lr=lr, weight_decay=wd),
               paramwise_cfg=paramwise)
    return build_optim_wrapper(model, cfg)


def group_of(optim, model):
    """parameter name -> its param group."""
    ids = {id(p): g for g in optim.optimizer.param_groups for p in g['params']}
    return {n: ids.get(id(p)) for n, p in model.named_parameters()}


def test_layer_ids():
    L = 3
    assert vit_layer_id('backbone.patch_embed.proj.weight', L) == 0
    assert vit_layer_id('backbone.cls_token', L) == 0
    assert vit_layer_id('backbone.reg_token', L) == 0
    assert vit_layer_id('backbone.pos_embed', L) == 0
    assert vit_layer_id('backbone.blocks.0.norm1.weight', L) == 1
    assert vit_layer_id('backbone.blocks.2.attn.rel_pos_h', L) == 3
    assert vit_layer_id('module.backbone.blocks.1.mlp.fc1.bias', L) == 2
    assert vit_layer_id('backbone.norm.weight', L) == 4
    assert vit_layer_id('decode_head.blocks.0.attn.qkv.weight', L) == 4
    assert vit_layer_id('neck.convs.0.weight', L) == 4


def test_groups_lr_and_weight_decay():
    model = tiny_segmentor()
    optim = build(model, rate=0.5, wd=0.05, lr=1e-3)
    groups = group_of(optim, model)
    L = 3

    def check(name, layer_id, decays):
        g = groups[name]
        assert g is not None, name
        assert g['layer_id'] == layer_id, name
        assert g['lr'] == pytest.approx(1e-3 * 0.5**(L + 1 - layer_id)), name
        assert g['weight_decay'] == (0.05 if decays else 0.0), name

    check('backbone.patch_embed.proj.weight', 0, True)
    check('backbone.patch_embed.proj.bias', 0, False)
    check('backbone.pos_embed', 0, False)
    check('backbone.cls_token', 0, False)
    check('backbone.reg_token', 0, False)
    check('backbone.blocks.0.attn.qkv.weight', 1, True)
    check('backbone.blocks.0.attn.rel_pos_h', 1, False)
    check('backbone.blocks.2.attn.rel_pos_w', 3, False)
    check('backbone.blocks.1.norm1.weight', 2, False)
    check('backbone.blocks.2.mlp.fc2.weight', 3, True)
    check('backbone.norm.weight', 4, False)
    check('decode_head.blocks.1.attn.qkv.weight', 4, True)
    check('decode_head.cls_emb', 4, True)
    check('decode_head.mask_norm.bias', 4, False)
    # every trainable parameter is in exactly one group
    n_opt = sum(len(g['params']) for g in optim.optimizer.param_groups)
    assert n_opt == sum(1 for p in model.parameters() if p.requires_grad)
    # the first group (whose lr mmengine logs) is the unscaled top layer
    first = optim.optimizer.param_groups[0]
    assert first['lr_scale'] == 1.0 and first['layer_id'] == L + 1
    assert optim.get_lr()['lr'][0] == pytest.approx(1e-3)


def test_explicit_num_layers_and_decay_mult():
    model = tiny_segmentor()
    optim = build(model, rate=0.8, num_layers=5, decay_mult=2.0)
    groups = group_of(optim, model)
    g = groups['backbone.blocks.0.attn.qkv.weight']
    assert g['lr'] == pytest.approx(1e-3 * 0.8**5)
    assert g['weight_decay'] == pytest.approx(0.1)
    assert groups['decode_head.blocks.0.attn.qkv.weight']['lr'] == \
        pytest.approx(1e-3)


def test_frozen_parameters_skipped():
    model = tiny_segmentor(frozen_blocks=1)
    optim = build(model)
    groups = group_of(optim, model)
    assert groups['backbone.patch_embed.proj.weight'] is None
    assert groups['backbone.pos_embed'] is None
    assert groups['backbone.blocks.0.attn.qkv.weight'] is None
    assert groups['backbone.blocks.1.attn.qkv.weight']['layer_id'] == 2
    # num_layers is still inferred from every block (frozen ones included)
    assert groups['backbone.blocks.1.attn.qkv.weight']['lr'] == \
        pytest.approx(1e-3 * 0.5**2)


def test_one_training_step():
    model = tiny_segmentor()
    optim = build(model)
    before = model.backbone.blocks[0].attn.qkv.weight.detach().clone()
    x = torch.randn(2, 3, 32, 32)
    loss = model.decode_head(model.backbone(x)).mean()
    optim.update_params(loss)
    assert not torch.equal(before, model.backbone.blocks[0].attn.qkv.weight)


@pytest.mark.parametrize('rate', [0, -0.5, 1.5, 'a', True])
def test_bad_decay_rate(rate):
    with pytest.raises(ValueError, match='layer_decay_rate'):
        ViTLayerDecayOptimizerConstructor(
            dict(optimizer=dict(type='AdamW', lr=1e-3)),
            dict(layer_decay_rate=rate))


def test_other_config_errors():
    opt = dict(optimizer=dict(type='AdamW', lr=1e-3))
    with pytest.raises(ValueError, match='layer_decay_rate'):
        ViTLayerDecayOptimizerConstructor(opt, dict())
    with pytest.raises(ValueError, match='unknown paramwise_cfg'):
        ViTLayerDecayOptimizerConstructor(
            opt, dict(layer_decay_rate=0.7, custom_keys={}))
    with pytest.raises(ValueError, match='num_layers'):
        ViTLayerDecayOptimizerConstructor(
            opt, dict(layer_decay_rate=0.7, num_layers=0))
    with pytest.raises(ValueError, match='num_layers=2'):
        build(tiny_segmentor(), num_layers=2)
    # a model without backbone blocks needs num_layers
    with pytest.raises(ValueError, match='set paramwise_cfg.num_layers'):
        build(torch.nn.Linear(2, 2))
