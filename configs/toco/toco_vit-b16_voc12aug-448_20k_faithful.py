# ToCo VOC / ViT-B with the reference's quirks (docs/toco.md, "faithful"):
# the PTC box taken in token units without rescaling, and the balanced
# segmentation loss that is NaN on crops without background or foreground.
_base_ = './toco_vit-b16_voc12aug-448_20k.py'
model = dict(faithful=True, loss_seg=dict(faithful=True))
