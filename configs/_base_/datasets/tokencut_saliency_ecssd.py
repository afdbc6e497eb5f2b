# ECSSD (Yan et al., CVPR 2013; 1,000 images) for TokenCut's saliency mode
# (docs/methods/tokencut.md#saliency-mode): Lanczos resize to multiples of
# the patch size, no padding; masks scored at the original size with the
# per-image protocol (docs/methods/metrics.md#saliency-per-image-protocol).
# Patch size 16 (DINO /16); /8 configs redefine test_pipeline.
dataset_type = 'SaliencyDataset'
data_root = 'data/ECSSD'
size_divisor = 16
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='ResizeToMultiple', size_divisor=size_divisor,
         interpolation='lanczos'),
    # the reference binarises masks as raw value > 0.5, i.e. any nonzero
    dict(type='LoadBinaryMask'),
    dict(type='PackSegInputs')
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        layout='ecssd',
        test_mode=True,
        pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = dict(type='SaliencyMetric', protocol='per_image')
val_evaluator = test_evaluator
test_cfg = dict(type='TestLoop')
val_cfg = dict(type='ValLoop')
train_dataloader = None
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    visualization=dict(type='SegVisualizationHook'))
