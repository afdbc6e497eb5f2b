# COCO 2014 (81 classes) in ToCo's layout with image-level labels derived
# from the masks (COCOImageLabelDataset): data/coco2014/{JPEGImages,
# SegmentationClass}/{train2014,val2014}; validation during training on a
# fixed part of val ('val_part' list, as the reference).
_base_ = './voc12aug_image_labels.py'
dataset_type = 'COCOImageLabelDataset'
data_root = 'data/coco2014'
train_dataloader = dict(
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='JPEGImages/train2014',
                                  seg_map_path='SegmentationClass/train2014'),
                 pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='JPEGImages/val2014',
                                  seg_map_path='SegmentationClass/val2014'),
                 ann_file='val_part.txt',
                 pipeline={{_base_.test_pipeline}}))
test_dataloader = dict(
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='JPEGImages/val2014',
                                  seg_map_path='SegmentationClass/val2014'),
                 pipeline={{_base_.test_pipeline}}))
