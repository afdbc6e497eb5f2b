# TokenCut on the official DINOv2 ViT-S/14 (VOC07 trainval, CorLoc). Default
# feature: bias-free keys (see the base model config); no published number.
#   python tools/model_converters/dinov2_2vtseg.py dinov2_vits14_pretrain.pth \
#       checkpoints/dinov2_vits14_tokencut.pth --prefix backbone.
#   python tools/test.py configs/tokencut/tokencut_dinov2-vits14_voc07.py \
#       checkpoints/dinov2_vits14_tokencut.pth
_base_ = [
    '../_base_/models/tokencut_dinov2_vits14.py',
    '../_base_/datasets/tokencut_voc07.py', '../_base_/default_runtime.py'
]
