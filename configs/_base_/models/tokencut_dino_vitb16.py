# TokenCut on the official DINO dino_vitb16 (dino_vitbase16_pretrain.pth converted with
# tools/model_converters/dino2vtseg.py; pass the converted file to
# tools/test.py). Reference features: keys of the last block, all heads.
_base_ = './tokencut_dino_vits16.py'
model = dict(backbone=dict(embed_dims=768, num_heads=12))
