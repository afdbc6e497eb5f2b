# Generic salient-object benchmark (template). Defaults: train on DUTS-TR,
# validate / test on ECSSD. Layout presets of SaliencyDataset (folders under
# data_root; see docs/saliency.md):
#   'duts-tr'   DUTS-TR/DUTS-TR-Image/*.jpg + DUTS-TR/DUTS-TR-Mask/*.png
#   'duts-te'   DUTS-TE/DUTS-TE-Image/*.jpg + DUTS-TE/DUTS-TE-Mask/*.png
#   'ecssd'     images/*.jpg + ground_truth_mask/*.png
#   'dut-omron' DUT-OMRON-image/*.jpg + pixelwiseGT-new-PNG/*.png
#   'hku-is'    imgs/*.png + gt/*.png
#   'folder'    images/*.jpg + masks/*.png
# Other layouts: data_prefix=dict(img_path=..., seg_map_path=...),
# img_suffix=..., seg_map_suffix=...; a split file: ann_file='test.txt'
# (one id per line, relative to data_root).
#
# Another test set in a child config (dicts merge key by key):
#   test_dataloader = dict(dataset=dict(data_root='data/DUTS',
#                                       layout='duts-te'))
#   val_dataloader = dict(dataset=dict(data_root='data/DUT-OMRON',
#                                      layout='dut-omron'))
# Variables (data_root, layout, mask_threshold, ...) are resolved when this
# file is read: overriding them alone in a child config changes nothing.
dataset_type = 'SaliencyDataset'
train_data_root = 'data/DUTS'
train_layout = 'duts-tr'
data_root = 'data/ECSSD'
layout = 'ecssd'
# Masks are binarised by vtseg's one rule (LoadBinaryMask, threshold=None;
# docs/reliability.md#masks): binary masks (1-bit, 0/255) where nonzero,
# other (anti-aliased / soft 8-bit) masks at 0.5 as in the salient-object
# protocols (value > 127), with a warning naming the file.
mask_threshold = None
img_scale = (224, 224)  # test: longest side 224, aspect ratio kept
crop_size = (224, 224)  # training input (aspect ratio not kept)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadBinaryMask', threshold=mask_threshold),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # after Resize: scores are computed at the original mask size
    dict(type='LoadBinaryMask', threshold=mask_threshold),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=train_data_root,
        layout=train_layout,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        layout=layout,
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# protocol='sod': precision/recall averaged over images before F (default);
# protocol='per_image': F per image then averaged (TokenCut,
# docs/methods/metrics.md#saliency-per-image-protocol)
val_evaluator = dict(type='SaliencyMetric', protocol='sod')
test_evaluator = val_evaluator
