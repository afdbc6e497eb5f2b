# ViTDet Mask R-CNN, ViT-L/16: 24 blocks, 1024 channels, 16 heads, windowed
# 14x14 attention with global blocks 5/11/17/23, drop path 0.4, layer decay
# 0.8 over 24 layers, activation checkpointing (docs/detection.md).
# Backbone weights: `python tools/model_converters/mae2vtseg.py
# mae_pretrain_vit_large.pth DST --prefix backbone. --global-blocks 5 11 17 23`.
_base_ = ['./mask-rcnn_vit-b16_simplefpn_lsj-1024_coco.py']
model = dict(
    backbone=dict(embed_dims=1024, depth=24, num_heads=16,
                  drop_path_rate=0.4, global_blocks=(5, 11, 17, 23),
                  out_indices=(23, ), with_cp=True),
    neck=dict(in_channels=1024))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.8, num_layers=24))
