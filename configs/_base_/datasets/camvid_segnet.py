# CamVid, SegNet split (Brostow et al. 2008/2009; 11-class SegNet
# relabelling, void ignored) at its native 360 x 480: train 367 frames, val
# 101, test (../shared/data/camvid_segnet holds 40 of the 233 test frames).
# train / val images are JPEG re-encodings, test images PNG.
dataset_type = 'CamVidDataset'
data_root = '../shared/data/camvid_segnet'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, img_suffix='.jpg',
                 data_prefix=dict(img_path='train',
                                  seg_map_path='trainannot'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, img_suffix='.jpg',
                 data_prefix=dict(img_path='val', seg_map_path='valannot'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
