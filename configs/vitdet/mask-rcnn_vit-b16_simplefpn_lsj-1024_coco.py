# ViTDet Mask R-CNN, ViT-B/16 (windowed 14x14 attention, global blocks
# 2/5/8/11, relative positions, drop path 0.1), SimpleFPN, COCO 1024 px LSJ,
# AdamW with layer decay 0.7, 100 epochs at batch 64 (docs/detection.md).
# Backbone weights: MAE ViT-B/16 in the ViTDet layout (no cls token, zero
# relative-position tables): `python tools/model_converters/mae2vtseg.py
# mae_pretrain_vit_base.pth DST --prefix backbone.` (a detectron2 / mmdet
# ViTDet backbone: vitdet2vtseg.py), then set
# model.backbone.init_cfg=dict(type='Pretrained', checkpoint=DST,
# prefix='backbone.').
_base_ = [
    '../_base_/models/vitdet_mask-rcnn_vit-b16.py',
    '../_base_/datasets/coco_instance_lsj_1024.py',
    '../_base_/schedules/vitdet_lsj_100e.py', '../_base_/det_runtime.py'
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000,
                    max_keep_ckpts=3))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
