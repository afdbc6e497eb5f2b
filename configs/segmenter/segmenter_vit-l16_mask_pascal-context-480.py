# Plain Segmenter ViT-L/16 mask, Pascal Context (60 classes, background
# included, as the Segmenter / Expedit checkpoints) 480 (30 x 30 tokens per
# crop), sliding window 480 / 320
# (docs/methods/expedit.md#metrics-and-published-numbers: 338.7 GFLOPs,
# 58.07 mIoU).
_base_ = [
    '../_base_/datasets/pascal_context.py', '../_base_/default_runtime.py',
    '../_base_/models/segmenter_vit-l16_mask.py'
]
model = dict(
    backbone=dict(img_size=480),
    decode_head=dict(num_classes=60),
    test_cfg=dict(mode='slide', crop_size=(480, 480), stride=(320, 320)))

# Evaluation only (official weights, no fine-tuning).
train_dataloader = None
train_cfg = None
optim_wrapper = None
test_cfg = dict(type='TestLoop')
val_cfg = dict(type='ValLoop')
