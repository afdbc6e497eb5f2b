# PASCAL VOC 2012 + SBD (train_aug, 10,582 images) with image-level labels
# derived from the masks (VOCImageLabelDataset); training loads no mask.
# Layout: data/VOCdevkit/VOC2012/{JPEGImages,SegmentationClassAug,
# SegmentationClass,ImageSets/Segmentation/{train_aug,val}.txt}.
dataset_type = 'VOCImageLabelDataset'
data_root = 'data/VOCdevkit/VOC2012'
crop_size = (448, 448)
meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'reduce_zero_label', 'img_labels')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # random rescale of the original image by 0.5 - 2.0 (ToCo)
    dict(type='RandomResize', scale=(500, 500), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
train_dataloader = dict(
    batch_size=2, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='JPEGImages',
                                  seg_map_path='SegmentationClassAug'),
                 ann_file='ImageSets/Segmentation/train_aug.txt',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='JPEGImages',
                                  seg_map_path='SegmentationClass'),
                 ann_file='ImageSets/Segmentation/val.txt',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
