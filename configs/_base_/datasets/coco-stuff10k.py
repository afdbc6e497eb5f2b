# COCO-Stuff 10k, mmseg layout: data/coco_stuff10k
_base_ = './coco-stuff164k.py'
data_root = 'data/coco_stuff10k'
train_dataloader = dict(
    dataset=dict(data_root=data_root,
                 data_prefix=dict(img_path='images/train2014',
                                  seg_map_path='annotations/train2014'),
                 reduce_zero_label=True))
val_dataloader = dict(
    dataset=dict(data_root=data_root,
                 data_prefix=dict(img_path='images/test2014',
                                  seg_map_path='annotations/test2014'),
                 reduce_zero_label=True))
test_dataloader = val_dataloader
