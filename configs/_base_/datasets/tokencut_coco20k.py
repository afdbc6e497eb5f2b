# COCO20k: 19,817 COCO train2014 images listed in the TokenCut / LOST file
# coco_20k_filenames.txt (one file name per line; put it in data_root),
# boxes from instances_train2014.json without crowd boxes
# (docs/methods/tokencut.md#corloc-data).
dataset_type = 'COCO20kDataset'
data_root = 'data/coco'
discovery_meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                       'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                       'reduce_zero_label', 'gt_bboxes')
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='PackSegInputs', meta_keys=discovery_meta_keys)
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2014.json',
        file_list='coco_20k_filenames.txt',
        data_prefix=dict(img_path='train2014'),
        test_mode=True,
        pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = dict(type='CorLocMetric')
val_evaluator = test_evaluator
test_cfg = dict(type='TestLoop')
val_cfg = dict(type='ValLoop')
train_dataloader = None
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    visualization=dict(type='SegVisualizationHook'))
