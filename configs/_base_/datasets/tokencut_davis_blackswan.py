# DAVIS 2016 'blackswan' (50 frames 854x480; Perazzi et al., CVPR 2016) from
# ../shared/data/davis2016_video: one item per sequence, frames resized to a
# short side of 320 rounded to the patch size (the reference's video
# setting), masks scored at 854x480: IoU per frame, averaged per sequence,
# with the centred-box baseline (docs/methods/tokencut.md#video-mode).
# Official DAVIS 2016 val: data_root='data/DAVIS', sequences from
# ImageSets, img_dir='JPEGImages/480p/{seq}', ann_dir='Annotations/480p/{seq}'.
dataset_type = 'VideoFramesDataset'
data_root = '../shared/data/davis2016_video'
size_divisor = 14
test_pipeline = [
    dict(type='LoadVideoFrames', short_side=320, size_divisor=size_divisor,
         interpolation='lanczos'),
    dict(type='PackVideoInputs')
]
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        sequences=['blackswan'],
        img_dir='{seq}/JPEGImages',
        ann_dir='{seq}/Annotations',
        test_mode=True,
        pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = dict(type='VideoIoUMetric')
val_evaluator = test_evaluator
test_cfg = dict(type='TestLoop')
val_cfg = dict(type='ValLoop')
train_dataloader = None
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False))
