# Expedit on Segmenter ViT-L/16, ADE20K 640: cluster the 40 x 40 tokens of
# each crop into 28 x 28 after block 9 (alpha = 10), reconstruct the full grid
# at the backbone output (restore='backbone', the hourglass design; vtseg
# default). Paper hyper-parameters: 5 iterations, window 5, temperature 0.02
# for clustering and reconstruction, k = 20
# (docs/methods/expedit.md#placement-and-configurations).
# The paper's table row (*) was produced without reconstruction: see
# expedit_segmenter_vit-l16_ade20k-640_faithful.py.
_base_ = '../segmenter/segmenter_vit-l16_mask_ade20k-640.py'
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=9, grid=(28, 28),
             n_iters=5, temperature=0.02, window_size=5),
        dict(type='TokenReconstruction', after_block=None, k=20,
             temperature=0.02)
    ]))
