# TokenCut single-object discovery, official DINO vitb16 on COCO20K
# (published CorLoc 59.0%; check against the _faithful config).
#   python tools/model_converters/dino2vtseg.py dino_vitbase16_pretrain.pth \
#       checkpoints/dino_vitb16_tokencut.pth --prefix backbone.
#   python tools/test.py configs/tokencut/tokencut_dino-vitb16_coco20k.py \
#       checkpoints/dino_vitb16_tokencut.pth
_base_ = [
    '../_base_/models/tokencut_dino_vitb16.py',
    '../_base_/datasets/tokencut_coco20k.py', '../_base_/default_runtime.py'
]
