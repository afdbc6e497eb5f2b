# Pascal VOC 2012 + SBD augmented training set (10,582 images).
_base_ = './pascal_voc12.py'
dataset_train = dict(
    type='PascalVOCDataset', data_root='data/VOCdevkit/VOC2012',
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
    ann_file='ImageSets/Segmentation/train.txt',
    pipeline={{_base_.train_pipeline}})
dataset_aug = dict(
    type='PascalVOCDataset', data_root='data/VOCdevkit/VOC2012',
    data_prefix=dict(img_path='JPEGImages',
                     seg_map_path='SegmentationClassAug'),
    ann_file='ImageSets/Segmentation/aug.txt',
    pipeline={{_base_.train_pipeline}})
train_dataloader = dict(
    dataset=dict(_delete_=True, type='ConcatDataset',
                 datasets=[dataset_train, dataset_aug]))
