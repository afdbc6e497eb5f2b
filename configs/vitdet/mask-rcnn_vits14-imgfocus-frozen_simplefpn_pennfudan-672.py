# The Penn-Fudan CPU experiment at a longest side of 672 px (48 tokens of
# 14 px instead of 32): the 448 px model localises coarsely (AP75 0.20,
# docs/detection.md), and a pedestrian spans few tokens at 448. Everything
# else (frozen backbone, heads, split, schedule) as in
# mask-rcnn_vits14-imgfocus-frozen_simplefpn_pennfudan-448.py; 672 is a
# multiple of 112 = lcm(14, 16), so the pyramid sizes stay exact.
_base_ = ['./mask-rcnn_vits14-imgfocus-frozen_simplefpn_pennfudan-448.py']
img_scale = (672, 672)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor', 'instances'))
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
