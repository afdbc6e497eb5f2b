# Plain Segmenter ViT-L/16 mask, ADE20K 640 (40 x 40 tokens per crop),
# sliding window 640 / 640: the Expedit baseline row
# (docs/methods/expedit.md#metrics-and-published-numbers: 658.98 GFLOPs,
# 51.82 mIoU with the Expedit counter and protocol).
#   python tools/test.py configs/segmenter/segmenter_vit-l16_mask_ade20k-640.py \
#       checkpoints/segmenter_vit-l16_mask_ade20k.pth
_base_ = [
    '../_base_/datasets/ade20k_640x640.py', '../_base_/default_runtime.py',
    '../_base_/models/segmenter_vit-l16_mask.py'
]
model = dict(
    backbone=dict(img_size=640),
    decode_head=dict(num_classes=150),
    test_cfg=dict(mode='slide', crop_size=(640, 640), stride=(640, 640)))

# Evaluation only (official weights, no fine-tuning).
train_dataloader = None
train_cfg = None
optim_wrapper = None
test_cfg = dict(type='TestLoop')
val_cfg = dict(type='ValLoop')
