# mmseg VisionTransformer (ViT-Tiny-like, 6 blocks) + FCNHead, from scratch.
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='VisionTransformer', img_size=(240, 320), patch_size=16,
        in_channels=3, embed_dims=192, num_layers=6, num_heads=3,
        mlp_ratio=4, out_indices=(5, ), drop_rate=0.0, drop_path_rate=0.1,
        with_cls_token=True, final_norm=True, interpolate_mode='bicubic'),
    decode_head=dict(
        type='FCNHead', in_channels=192, channels=128, num_convs=1,
        concat_input=False, dropout_ratio=0.1, num_classes=11,
        norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                         loss_weight=1.0, avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
