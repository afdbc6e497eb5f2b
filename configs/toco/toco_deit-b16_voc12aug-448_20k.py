# ToCo, VOC setting with DeiT-B/16 (timm deit_base_patch16_224, IN-1k;
# checkpoints/deit-b16_in1k.pth via tools/model_converters/timm2vtseg.py),
# the reference training script's default backbone. Reference log: CAM 70.5,
# aux CAM 62.5, seg 68.1 mIoU on val.
#   bash tools/dist_train.sh configs/toco/toco_deit-b16_voc12aug-448_20k.py 2
_base_ = './toco_vit-b16_voc12aug-448_20k.py'
model = dict(backbone=dict(init_cfg=dict(
    checkpoint='checkpoints/deit-b16_in1k.pth')))
