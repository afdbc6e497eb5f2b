# sod_bsds for TokenCut's saliency mode
# (docs/methods/tokencut.md#saliency-mode): images resized with Lanczos to
# (round(W/p) p, round(H/p) p), no padding; the mask is predicted at the
# original size (nearest upsampling of the seed's component, or the
# bilateral solver's soft output) and scored with the per-image protocol
# (docs/methods/metrics.md#saliency-per-image-protocol: IoU / Acc at 0.5,
# maxF beta^2 = 0.3 averaged per image).
# Patch size 14 here; configs for /16 or /8 backbones redefine test_pipeline.
dataset_type = 'SaliencyDataset'
data_root = '../shared/data/sod_bsds'
size_divisor = 14
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='ResizeToMultiple', size_divisor=size_divisor,
         interpolation='lanczos'),
    dict(type='LoadBinaryMask'),
    dict(type='PackSegInputs')
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
