# FCN head on a small mmseg ViT, trained from scratch for 400 iterations
# on CamVid frames (CPU-sized), evaluated on held-out frames.
_base_ = [
    '../_base_/models/fcn_vit-t16.py', '../_base_/datasets/camvid.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_20k.py'
]
crop_size = (240, 320)
model = dict(data_preprocessor=dict(size=crop_size))
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=40),
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=40, end=400,
         by_epoch=False)
]
train_cfg = dict(max_iters=400, val_interval=200)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=200, max_keep_ckpts=2))
randomness = dict(seed=0)
