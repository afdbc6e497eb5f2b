# ToCo (docs/toco.md): ViT-B/16 (timm vit_base_patch16_224, ImageNet-21k ->
# 1k; convert with tools/model_converters/timm2vtseg.py), final-layer CAM and
# auxiliary CAM after block 9 (aux_layer=-3), LargeFOV head, DINO projection
# head with an EMA teacher (momentum 0.9 in the reference's convention).
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
    seg_pad_val=255, size=(448, 448))
model = dict(
    type='ToCoSegmentor',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ViT', img_size=224, patch_size=16, embed_dims=768, depth=12,
        num_heads=12, mlp_ratio=4, qkv_bias=True, norm_eps=1e-6,
        final_norm=True, out_indices=-1, drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/vit-b16_in21k-in1k.pth',
                      prefix='backbone.')),
    decode_head=dict(type='LargeFOVHead', in_channels=768, channels=512,
                     dilation=5, num_classes=21, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss',
                                      loss_weight=1.0)),
    proj_head=dict(type='DINOProjHead', in_dims=768, out_dims=1024,
                   hidden_dims=2048, bottleneck_dims=256, num_layers=3),
    aux_layer=-3,
    cls_weight=1.0, aux_weight=1.0,
    loss_ptc=dict(type='PTCLoss', loss_weight=0.2),
    loss_ctc=dict(type='CTCLoss', loss_weight=0.5, temp=0.5),
    loss_seg=dict(type='BalancedSegLoss', loss_weight=0.1),
    ema_momentum=0.1,
    cam_scales=(1.0, 0.5, 1.5),
    bkg_thre=0.5, high_thre=0.7, low_thre=0.25,
    num_local_crops=8, local_crop_size=96, neg_ratio=0.2,
    view_scale=(0.4, 1.0),
    seg_start_iter=2000, contrast_start_iter=-1, aux_label_until=-1,
    par=dict(dilations=(1, 2, 4, 8, 12, 24), num_iter=10),
    freeze_pos_embed=True, faithful=False, seed=0,
    train_cfg=dict(),
    test_cfg=dict(output='seg', seg_scales=(1.0, 1.25, 1.5),
                  cam_scales=(1.0, 0.5, 1.5), flip=True))
