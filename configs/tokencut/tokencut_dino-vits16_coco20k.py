# TokenCut single-object discovery, official DINO vits16 on COCO20K
# (published CorLoc 58.8%; check against the _faithful config).
#   python tools/model_converters/dino2vtseg.py dino_deitsmall16_pretrain.pth \
#       checkpoints/dino_vits16_tokencut.pth --prefix backbone.
#   python tools/test.py configs/tokencut/tokencut_dino-vits16_coco20k.py \
#       checkpoints/dino_vits16_tokencut.pth
_base_ = [
    '../_base_/models/tokencut_dino_vits16.py',
    '../_base_/datasets/tokencut_coco20k.py', '../_base_/default_runtime.py'
]
