# DToP with SegViT's ATM stage heads on a plain ViT-B/16 (the reference's
# BASE model: no cls token, no final norm, bicubic position-table
# interpolation; stages end after blocks 5, 7 and 11; heads with
# in_channels // 2 channels and 3 decoder layers). Backbone weights: the
# mmseg Segmenter ViT-B/16 (384) pre-training checkpoint, converted with
#   python tools/model_converters/mmseg2vtseg.py \
#       vit_base_p16_384_20220308-96dfe169.pth \
#       checkpoints/vit-b16_384_mmseg.pth --no-cls-token
# (mmseg adds the cls position entry and drops the token: same network). Its
# 24 x 24 position table is resized bicubically to each crop's grid, as
# mmseg does at load time (docs/dtop.md).
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
    seg_pad_val=255)
atm_head = dict(type='ATMStageHead', in_channels=768, channels=384,
                num_classes=150, num_layers=3, num_heads=6)
model = dict(
    type='DToPEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ViT', img_size=384, patch_size=16, embed_dims=768, depth=12,
        num_heads=12, mlp_ratio=4, qkv_bias=True, with_cls_token=False,
        pos_embed_with_cls=False, final_norm=False, norm_eps=1e-6,
        drop_path_rate=0.1, out_indices=-1, interpolate_mode='bicubic',
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/vit-b16_384_mmseg.pth')),
    decode_head=atm_head,
    stage_heads=[atm_head, atm_head],
    stages=[5, 7, 11],
    thresh=1.0,
    topk=5,
    impl='pack',
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
