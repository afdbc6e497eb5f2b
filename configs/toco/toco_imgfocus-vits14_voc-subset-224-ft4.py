# Second CPU experiment (issue 12, point 5; docs/toco.md): the recipe of
# toco_imgfocus-vits14_voc-subset-224.py, changed so that the classifier can
# learn within ~20 CPU minutes (80 iterations of batch 4, ~1 epoch;
# segmentation loss from iteration 30): the patch embedding and the first 8 blocks
# frozen (eval mode, no gradients), blocks 8-11 trained (the auxiliary CAM's
# block 9 and the final tokens PTC acts on are among them), backbone lr 5e-5,
# classifiers / projection head / segmentation head at 60x (3e-3), 5
# warm-up iterations, batch 4, training CAM scale 1.0 only. Baseline with
# the same budget: toco_imgfocus-vits14_voc-subset-224_cam-ft4.py.
#   OMP_NUM_THREADS=1 python tools/train.py \
#       configs/toco/toco_imgfocus-vits14_voc-subset-224-ft4.py
_base_ = './toco_imgfocus-vits14_voc-subset-224.py'
train_dataloader = dict(batch_size=4)
model = dict(
    backbone=dict(frozen_blocks=8),
    cam_scales=(1.0, ),
    seg_start_iter=30)
optim_wrapper = dict(
    optimizer=dict(lr=5e-5),
    paramwise_cfg=dict(custom_keys={
        'classifier': dict(lr_mult=60.0),
        'proj_head.': dict(lr_mult=60.0),
        'decode_head': dict(lr_mult=60.0)}))
max_iters = 80
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=5),
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
