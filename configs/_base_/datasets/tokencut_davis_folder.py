# Every sequence under a DAVIS-style folder (`<seq>/JPEGImages/*.jpg`,
# `<seq>/Annotations/*.png`; DAVIS 2016, Perazzi et al., CVPR 2016) for
# TokenCut video: one item per sequence, frames resized to a short side of 320
# rounded to the patch size (the reference's video setting), masks scored at
# the original frame size. VideoIoUMetric: IoU per frame, mean per sequence,
# then over sequences (DAVIS 2016 J mean), each sequence beside its
# centred-box baseline. sequences=None takes every folder under data_root;
# a list restricts it (docs/protocol.md names the tuning and report
# sequences). Official DAVIS 2016 val layout:
# data_root='data/DAVIS', img_dir='JPEGImages/480p/{seq}',
# ann_dir='Annotations/480p/{seq}'.
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
        sequences=None,
        img_dir='{seq}/JPEGImages',
        ann_dir='{seq}/Annotations',
        test_mode=True,
        pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = dict(type='VideoIoUMetric', per_sequence=True)
val_evaluator = test_evaluator
test_cfg = dict(type='TestLoop')
val_cfg = dict(type='ValLoop')
train_dataloader = None
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False))
