# TokenCut on the official DINO dino_vits8 (dino_deitsmall8_pretrain.pth converted with
# tools/model_converters/dino2vtseg.py; pass the converted file to
# tools/test.py). Reference features: keys of the last block, all heads.
_base_ = './tokencut_dino_vits16.py'
patch_size = 8
data_preprocessor = dict(size_divisor=patch_size)
model = dict(
    data_preprocessor=data_preprocessor, backbone=dict(patch_size=patch_size))
