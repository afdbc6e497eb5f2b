# Image-mode object discovery on the frames of a DAVIS-style folder
# (`<seq>/JPEGImages`, `<seq>/Annotations`; DAVIS 2016, Perazzi et al.,
# CVPR 2016): one item per frame, full-resolution frames (zero-padded to the
# patch size by the model), one ground-truth box per frame = the box of the
# whole annotation mask (an empty mask has no box: a miss). CorLoc with the
# centred-box baseline, per sequence and over all frames, and the per-frame
# mask IoU of the discovered object (VideoIoUMetric: mean per sequence, then
# over sequences). sequences=None takes every folder under data_root.
dataset_type = 'VideoFramesDataset'
data_root = '../shared/data/davis2016_video'
discovery_meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                       'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                       'reduce_zero_label', 'gt_bboxes', 'seq_name')
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
        sequences=None,
        items='frame',
        box_mode='mask',
        img_dir='{seq}/JPEGImages',
        ann_dir='{seq}/Annotations',
        test_mode=True,
        pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = [
    dict(type='CorLocMetric'),
    dict(type='VideoIoUMetric', per_sequence=False, prefix='mask')
]
val_evaluator = test_evaluator
test_cfg = dict(type='TestLoop')
val_cfg = dict(type='ValLoop')
train_dataloader = None
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False))
