# Segmenter ViT-L/16 + mask transformer (rstrudel/segmenter "Seg-L-Mask/16")
# with the official weights converted by
#   python tools/model_converters/segmenter2vtseg.py checkpoint.pth \
#       checkpoints/segmenter_vit-l16_mask_<dataset>.pth
# (encoder -> backbone.*, decoder -> decode_head.* under the Segmenter names,
# LayerNorm eps 1e-5 as Segmenter). Images are normalised with mean = std =
# 127.5 (Segmenter's "vit" normalisation). Dataset configs set num_classes,
# img_size (the position table of the checkpoint: the training crop / 16) and
# the sliding-window test crop / stride of
# docs/methods/expedit.md#segmenter-baseline.
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5], bgr_to_rgb=True, pad_val=0, seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ViT', img_size=640, patch_size=16, embed_dims=1024, depth=24,
        num_heads=16, mlp_ratio=4, qkv_bias=True, with_cls_token=True,
        pos_embed_with_cls=True, final_norm=True, norm_eps=1e-5,
        out_indices=-1, interpolate_mode='bicubic', token_stages=[]),
    decode_head=dict(
        type='SegmenterMaskHead', in_channels=1024, num_classes=150,
        d_model=1024, n_layers=2, n_heads=16, d_ff=4096, dropout=0.0,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                         loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(640, 640), stride=(640, 640)))
