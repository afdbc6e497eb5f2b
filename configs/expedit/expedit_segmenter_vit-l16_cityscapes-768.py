# Expedit on Segmenter ViT-L/16, Cityscapes 768: 48 x 48 -> 32 x 32 after
# block 11 (alpha = 12), reconstruction at the backbone output; paper
# hyper-parameters (docs/methods/expedit.md#placement-and-configurations).
_base_ = '../segmenter/segmenter_vit-l16_mask_cityscapes-768.py'
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=11, grid=(32, 32),
             n_iters=5, temperature=0.02, window_size=5),
        dict(type='TokenReconstruction', after_block=None, k=20,
             temperature=0.02)
    ]))
