# Expedit on Segmenter ViT-L/16, Pascal Context 480: 30 x 30 -> 20 x 20 after
# block 13 (alpha = 14), reconstruction at the backbone output; paper
# hyper-parameters (docs/methods/expedit.md#placement-and-configurations).
_base_ = '../segmenter/segmenter_vit-l16_mask_pascal-context-480.py'
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=13, grid=(20, 20),
             n_iters=5, temperature=0.02, window_size=5),
        dict(type='TokenReconstruction', after_block=None, k=20,
             temperature=0.02)
    ]))
