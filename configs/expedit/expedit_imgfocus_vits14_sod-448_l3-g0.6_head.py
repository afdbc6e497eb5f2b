# The aggressive setting (cluster after block 3 to 0.6 of the token grid)
# with the reconstruction deferred to the decode head (restore='head'): the
# UpConv decoder's first transposed convolution multiplies the 247 cluster
# tokens instead of the 704 rebuilt ones and rebuilds its products (the
# reconstruction is linear in the cluster tokens), so the outputs equal
# expedit_imgfocus_vits14_sod-448_l3-g0.6.py up to float rounding.
#   python tools/test.py \
#       configs/expedit/expedit_imgfocus_vits14_sod-448_l3-g0.6_head.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = './expedit_imgfocus_vits14_sod-448_l3-g0.6.py'
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=3, grid=0.6, n_iters=5,
             temperature=30.0, window_size=5,
             temperature_mode='relative'),
        dict(type='TokenReconstruction', after_block=None, k=20,
             temperature=30.0, defer_to_head=True)
    ]))
