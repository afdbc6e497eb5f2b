# ToCo, the paper's COCO 2014 setting (docs/toco.md): ViT-B/16, auxiliary CAM
# after block 9, thresholds 0.45 / 0.65 / 0.25, CTC temperature 1.0, 80k
# iterations (2 images per GPU x 4 GPUs), validation every 4k iterations on
# val_part; loss schedule: cls + aux only up to iteration 8,000, then the
# segmentation loss on auxiliary-CAM labels up to 12,000, then the full
# loss with final-CAM labels.
#   bash tools/dist_train.sh configs/toco/toco_vit-b16_coco2014-448_80k.py 4
# Reference log: CAM 43.4, aux CAM 41.2, seg 42.4 mIoU (val_part).
_base_ = [
    '../_base_/models/toco_vit-b16.py',
    '../_base_/datasets/coco2014_image_labels.py',
    '../_base_/schedules/toco_adamw_20k.py', '../_base_/default_runtime.py'
]
model = dict(
    decode_head=dict(num_classes=81),
    aux_layer=9,
    bkg_thre=0.45, high_thre=0.65, low_thre=0.25,
    loss_ctc=dict(temp=1.0),
    seg_start_iter=8000, contrast_start_iter=12000, aux_label_until=12000,
    test_cfg=dict(seg_scales=(1.0, 1.25, 1.5)))
max_iters = 80000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
