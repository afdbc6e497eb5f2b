# DToP with ATM stage heads on a plain ViT-L/16 (no cls token, no final
# norm; stages end after blocks 7, 15 and 23; heads with 512 channels and 3
# decoder layers; children set the heads' attention heads and classes).
# Backbone weights: the mmseg Segmenter ViT-L/16 (384) pre-training
# checkpoint, converted with
#   python tools/model_converters/mmseg2vtseg.py \
#       vit_large_p16_384_20220308-d4efb41d.pth \
#       checkpoints/vit-l16_384_mmseg.pth --no-cls-token
# (the reference's COCO-Stuff config points at the ViT-B checkpoint and loads
# it non-strictly; vtseg loads these ViT-L weights strictly; docs/dtop.md).
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
    seg_pad_val=255)
atm_head = dict(type='ATMStageHead', in_channels=1024, channels=512,
                num_classes=150, num_layers=3, num_heads=8)
model = dict(
    type='DToPEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ViT', img_size=384, patch_size=16, embed_dims=1024, depth=24,
        num_heads=16, mlp_ratio=4, qkv_bias=True, with_cls_token=False,
        pos_embed_with_cls=False, final_norm=False, norm_eps=1e-6,
        drop_path_rate=0.1, out_indices=-1, interpolate_mode='bicubic',
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/vit-l16_384_mmseg.pth')),
    decode_head=atm_head,
    stage_heads=[atm_head, atm_head],
    stages=[7, 15, 23],
    thresh=1.0,
    topk=5,
    impl='pack',
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(640, 640), stride=(320, 320)))
