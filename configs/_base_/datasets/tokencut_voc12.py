# PASCAL VOC2012 trainval (11,540 images) for single-object discovery (CorLoc,
# docs/methods/tokencut.md#corloc-data, docs/methods/metrics.md#corloc):
# the VOC07 settings on data_root = VOCdevkit/VOC2012.
_base_ = './tokencut_voc07.py'
data_root = 'data/VOCdevkit/VOC2012'
test_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = test_dataloader
