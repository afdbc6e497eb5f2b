# ToCo, the paper's VOC setting (docs/toco.md): ViT-B/16 (timm
# vit_base_patch16_224, IN-21k -> 1k, converted with
# tools/model_converters/timm2vtseg.py to checkpoints/vit-b16_in21k-in1k.pth),
# VOC 2012 + SBD train_aug with image-level labels from the masks, 448
# crops, 2 global + 8 local (96 px) views, 20k iterations, 2 images per GPU
# x 2 GPUs:
#   bash tools/dist_train.sh configs/toco/toco_vit-b16_voc12aug-448_20k.py 2
# Reference log: CAM 72.3, aux CAM 68.4, seg 69.2 mIoU on val.
_base_ = [
    '../_base_/models/toco_vit-b16.py',
    '../_base_/datasets/voc12aug_image_labels.py',
    '../_base_/schedules/toco_adamw_20k.py', '../_base_/default_runtime.py'
]
