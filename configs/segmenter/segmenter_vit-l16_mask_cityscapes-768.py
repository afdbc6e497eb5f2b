# Plain Segmenter ViT-L/16 mask, Cityscapes 768 (48 x 48 tokens per crop),
# sliding window 768 / 512
# (docs/methods/expedit.md#metrics-and-published-numbers: 995.6 GFLOPs,
# 79.14 mIoU).
_base_ = [
    '../_base_/datasets/cityscapes_768x768.py',
    '../_base_/default_runtime.py', '../_base_/models/segmenter_vit-l16_mask.py'
]
model = dict(
    backbone=dict(img_size=768),
    decode_head=dict(num_classes=19),
    test_cfg=dict(mode='slide', crop_size=(768, 768), stride=(512, 512)))

# Evaluation only (official weights, no fine-tuning).
train_dataloader = None
train_cfg = None
optim_wrapper = None
test_cfg = dict(type='TestLoop')
val_cfg = dict(type='ValLoop')
