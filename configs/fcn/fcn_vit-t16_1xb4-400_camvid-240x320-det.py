# Deterministic variant for the resume check: no random augmentation, no
# dropout / drop path, fixed seed, deterministic algorithms.
_base_ = './fcn_vit-t16_1xb4-400_camvid-240x320.py'
model = dict(
    backbone=dict(drop_path_rate=0.0),
    decode_head=dict(dropout_ratio=0.0))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(320, 240), keep_ratio=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
randomness = dict(seed=0, deterministic=True)
