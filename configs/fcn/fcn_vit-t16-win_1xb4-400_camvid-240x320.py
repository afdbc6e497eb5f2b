# FCN head on the small ViT of the parent config, rebuilt as the vtseg ViT
# with ViTDet attention: windowed blocks (window 6 on the 15 x 20 patch grid
# of the 240 x 320 crops: not divisible, so the border windows are padded
# and their padding masked), 2 global blocks, decomposed relative
# positions, activation checkpointing, and layer-wise lr decay 0.75.
# docs/backbone.md: "Windowed attention (ViTDet)", "Layer-wise learning-rate
# decay".
_base_ = './fcn_vit-t16_1xb4-400_camvid-240x320.py'
model = dict(
    backbone=dict(
        _delete_=True, type='ViT', img_size=(240, 320), patch_size=16,
        in_channels=3, embed_dims=192, depth=6, num_heads=3, mlp_ratio=4.0,
        out_indices=(5, ), drop_rate=0.0, drop_path_rate=0.1,
        with_cls_token=True, final_norm=True, interpolate_mode='bicubic',
        window_size=6, global_blocks=[2, 5], use_rel_pos=True,
        with_cp=True))
optim_wrapper = dict(
    constructor='ViTLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.75))
