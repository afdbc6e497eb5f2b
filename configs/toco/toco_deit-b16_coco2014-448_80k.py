# ToCo COCO 2014 setting with DeiT-B/16 (checkpoints/deit-b16_in1k.pth).
# Reference log: CAM 41.9, aux CAM 30.9, seg 40.6 mIoU (val_part).
#   bash tools/dist_train.sh configs/toco/toco_deit-b16_coco2014-448_80k.py 4
_base_ = './toco_vit-b16_coco2014-448_80k.py'
model = dict(backbone=dict(init_cfg=dict(
    checkpoint='checkpoints/deit-b16_in1k.pth')))
