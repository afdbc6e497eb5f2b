# The network of expedit_segmenter_vit-l16_ade20k-640.py, spelled with the
# Expedit repositories' backbone name: HourglassViT is the vtseg ViT with the
# clustering / reconstruction stages built from the reference's arguments
# (cluster_layer = the reference's clustering location, grid = its cluster
# grid); parameters, state-dict keys and outputs are the ViT's, so the same
# checkpoints load (docs/expedit.md, "Stages and configuration").
_base_ = '../segmenter/segmenter_vit-l16_mask_ade20k-640.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='HourglassViT',
        cluster_layer=9,
        grid=(28, 28),
        reconstruct_layer=None,
        k=20,
        cluster_temperature=0.02,
        reconstruct_temperature=0.02,
        window_size=5,
        n_iters=5,
        img_size=640, patch_size=16, embed_dims=1024, depth=24,
        num_heads=16, mlp_ratio=4, qkv_bias=True, with_cls_token=True,
        pos_embed_with_cls=True, final_norm=True, norm_eps=1e-5,
        out_indices=-1, interpolate_mode='bicubic'))
