# Penn-Fudan pedestrians (boxes from Annotation/*.txt, instance masks from
# PedMasks/*.png) for mmdet (docs/detection.md). Fixed split, the one of
# docs/connnet.md: names sorted, every 3rd one (positions 2, 5, 8, ...) is
# val: 34 train images (99 pedestrians) / 16 val images (40 pedestrians).
# Images resized to a long side of `img_scale` (train: x0.8..1.2 jitter and
# horizontal flips).
dataset_type = 'vtseg.datasets.PennFudanDetDataset'
data_root = '../shared/data/pennfudanped'
img_scale = (448, 448)
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.8, 1.2),
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    # `instances` carries the ground truth to CocoMetric (no ann_file)
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor', 'instances'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        val_every=3,
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        val_every=3,
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric', metric=['bbox', 'segm'], format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
