# PASCAL VOC2012 trainval (11,540 images) for single-object discovery (CorLoc,
# methods.md §5.1 / §8.2): the VOC07 settings on data_root =
# VOCdevkit/VOC2012.
_base_ = './tokencut_voc07.py'
data_root = 'data/VOCdevkit/VOC2012'
test_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = test_dataloader
