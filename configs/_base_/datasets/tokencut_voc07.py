# PASCAL VOC2007 trainval (5,011 images) for single-object discovery (CorLoc,
# docs/methods/tokencut.md#corloc-data, docs/methods/metrics.md#corloc).
# data_root = VOCdevkit/VOC2007; boxes from the XML files (1-based:
# xmin - 1, ymin - 1). no_hard=True is the paper's optional setting (drop
# difficult / truncated objects, skip images left empty).
dataset_type = 'VOCDiscoveryDataset'
data_root = 'data/VOCdevkit/VOC2007'
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
        ann_file='ImageSets/Main/trainval.txt',
        no_hard=False,
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
