# TokenCut on the official DINO dino_vits16 (dino_deitsmall16_pretrain.pth converted with
# tools/model_converters/dino2vtseg.py; pass the converted file to
# tools/test.py). Reference features: keys of the last block, all heads.
patch_size = 16
data_preprocessor = dict(
    type='TokenCutDataPreProcessor', size_divisor=patch_size,
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True, pad_val=0)
model = dict(
    type='TokenCut',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ViT', img_size=224, patch_size=patch_size, embed_dims=384,
        depth=12, num_heads=6, mlp_ratio=4, qkv_bias=True,
        norm_eps=1e-6, final_norm=True, out_indices=-1),
    mode='discovery',
    feature='k',
    layer=-1,
    center=False,
    tau=0.2,
    eps=1e-5,
    binary_graph=True,
    solver='auto',
    # the paper's rule (side of the largest |x|): these configs reproduce
    # published numbers (docs/tokencut.md, foreground side)
    foreground='reference')
