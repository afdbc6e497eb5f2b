# ViTDet schedule: 100 epochs of COCO at batch 64 = 184,375 iterations,
# AdamW (lr 1e-4, betas 0.9/0.999, weight decay 0.1) with layer-wise lr decay
# (vtseg's ViTLayerDecayOptimizerConstructor, reached by its import path
# under default_scope='mmdet'), 250 warm-up iterations, x0.1 at 88.9% and
# 96.3% of training.
max_iters = 184375
interval = 5000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=250),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
         milestones=[163889, 177546], gamma=0.1)
]
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='vtseg.engine.optimizers.ViTLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7, num_layers=12),
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.1))
auto_scale_lr = dict(enable=False, base_batch_size=64)
