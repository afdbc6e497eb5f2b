# sod_bsds (150 BSDS photos with salient-object masks; Movahedi & Elder,
# CVPR-W 2010; images Martin et al., ICCV 2001) for single-object discovery:
# full-resolution images (zero-padded to the patch size by the model), one
# ground-truth box per image = the box of the whole mask. Scores CorLoc (with
# the centred-box baseline) and, on the seed component's mask, the per-image
# saliency metrics (docs/methods/metrics.md#saliency-per-image-protocol).
dataset_type = 'MaskBoxDataset'
data_root = '../shared/data/sod_bsds'
discovery_meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                       'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                       'reduce_zero_label', 'gt_bboxes')
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='LoadBinaryMask'),
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
        layout='folder',
        box_mode='mask',
        test_mode=True,
        pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = [
    dict(type='CorLocMetric'),
    dict(type='SaliencyMetric', protocol='per_image', prefix='saliency')
]
val_evaluator = test_evaluator
test_cfg = dict(type='TestLoop')
val_cfg = dict(type='ValLoop')
train_dataloader = None
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    visualization=dict(type='SegVisualizationHook'))
