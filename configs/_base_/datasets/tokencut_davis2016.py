# DAVIS 2016 val (20 sequences, 480p; Perazzi et al., CVPR 2016) for
# TokenCut video (docs/methods/tokencut.md#video-mode): frames resized to a
# short side of 320 (multiple of the patch size, Lanczos), one graph per
# sequence; IoU per frame, averaged per sequence, then over sequences.
# Optional optical-flow renderings (e.g. RAFT) in flow_dir, one image per
# frame.
dataset_type = 'VideoFramesDataset'
data_root = 'data/DAVIS'
size_divisor = 16
davis2016_val = [
    'blackswan', 'bmx-trees', 'breakdance', 'camel', 'car-roundabout',
    'car-shadow', 'cows', 'dance-twirl', 'dog', 'drift-chicane',
    'drift-straight', 'goat', 'horsejump-high', 'kite-surf', 'libby',
    'motocross-jump', 'paragliding-launch', 'parkour', 'scooter-black',
    'soapbox'
]
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
        sequences=davis2016_val,
        img_dir='JPEGImages/480p/{seq}',
        ann_dir='Annotations/480p/{seq}',
        flow_dir=None,  # e.g. 'RAFT_FlowImages_gap1/480p/{seq}'
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
