# As imgfocus_vits14_sod-224.py with the longest side resized to 448
# (32 x 22 tokens for a 481 x 321 photo; the backbone interpolates its
# 37 x 37 position table to any grid).
_base_ = './imgfocus_vits14_sod-224.py'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(448, 448), keep_ratio=True),
    dict(type='LoadBinaryMask'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
