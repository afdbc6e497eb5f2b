# TokenCut single-object discovery, official DINO vits8 on COCO20K
# (published CorLoc 60.7%; check against the _faithful config).
#   python tools/model_converters/dino2vtseg.py dino_deitsmall8_pretrain.pth \
#       checkpoints/dino_vits8_tokencut.pth --prefix backbone.
#   python tools/test.py configs/tokencut/tokencut_dino-vits8_coco20k.py \
#       checkpoints/dino_vits8_tokencut.pth
_base_ = [
    '../_base_/models/tokencut_dino_vits8.py',
    '../_base_/datasets/tokencut_coco20k.py', '../_base_/default_runtime.py'
]
