# Penn-Fudan pedestrians (Wang et al., ACCV 2007; 50 photos, 139 pedestrians)
# for object discovery: boxes from Annotation/*.txt (1-based -> 0-based
# half-open), any pedestrian counts for CorLoc; the binarised PedMasks score
# the discovered mask as person segmentation (per-image saliency protocol).
dataset_type = 'PennFudanDiscoveryDataset'
data_root = '../shared/data/pennfudanped'
discovery_meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                       'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                       'reduce_zero_label', 'gt_bboxes')
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    # PedMasks hold instance ids 1..k: every id is a person (the default
    # rule would read a non-binary mask as an 8-bit map, > 127)
    dict(type='LoadBinaryMask', threshold=0),
    dict(type='PackSegInputs', meta_keys=discovery_meta_keys)
]
test_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        test_mode=True,
        pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = [
    dict(type='CorLocMetric'),
    dict(type='SaliencyMetric', protocol='per_image', prefix='person')
]
val_evaluator = test_evaluator
test_cfg = dict(type='TestLoop')
val_cfg = dict(type='ValLoop')
train_dataloader = None
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    visualization=dict(type='SegVisualizationHook'))
