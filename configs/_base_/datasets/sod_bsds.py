# SOD subset of BSDS (150 photos with binary salient-object masks; Movahedi &
# Elder, CVPR-W 2010; images: Martin et al., ICCV 2001), layout
# images/<id>.jpg + masks/<id>.png (1-bit PNG). See docs/saliency.md.
#
# Fixed deterministic split over the 150 sorted ids (no split files):
#   train = first 100 ids (split='train', num_train=100)
#   val   = last 50 ids   (split='val',   num_train=100)   -> val_dataloader
#   test  = all 150 ids   (split='all')                    -> test_dataloader
# test covers every image, for models that never trained on sod_bsds; a model
# trained with train_dataloader must be tested on the held-out part:
#   test_dataloader = dict(dataset=dict(split='val'))
#
# Resizing: the test pipeline resizes the image so that its longest side is
# 224 (481x321 -> 224x149); predictions are scored at the original mask size
# (mmseg's segmentor resizes them back, the mask is loaded after Resize).
# Model configs change the scale by redefining test_pipeline and setting
#   val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
#   test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
# (variables such as img_scale are resolved when this file is read, so
# overriding only img_scale in a child config has no effect).
dataset_type = 'SaliencyDataset'
data_root = '../shared/data/sod_bsds'
img_scale = (224, 224)  # keep_ratio=True: fit inside 224x224
crop_size = (224, 224)  # training input (aspect ratio not kept)
num_train = 100
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadBinaryMask'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # after Resize: the mask stays at the original size
    dict(type='LoadBinaryMask'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        layout='folder',
        split='train',
        num_train=num_train,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        layout='folder',
        split='val',
        num_train=num_train,
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        layout='folder',
        split='all',
        num_train=num_train,
        test_mode=True,
        pipeline=test_pipeline))
# mae, max_f (beta^2 = 0.3, mean-PR protocol), iou and acc at p > 0.5
val_evaluator = dict(type='SaliencyMetric')
test_evaluator = val_evaluator
