# Expedit inside the 672 px Penn-Fudan detector, training-free (test time
# only): cluster the patch tokens after block 5 to 0.5 of the token grid
# (soft k-means, 5 iterations, window 5, temperatures relative to the
# feature scale), run blocks 6-11 on the clusters, rebuild the full map at
# the backbone output (k = 20) before the SimpleFPN neck. Block and grid
# chosen on the train images (the fastest setting within 2 box-AP points
# there, docs/detection.md); same weights as the plain 672 config.
_base_ = ['./mask-rcnn_vits14-imgfocus-frozen_simplefpn_pennfudan-672.py']
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=5, grid=0.5, n_iters=5,
             temperature=30.0, window_size=5,
             temperature_mode='relative'),
        dict(type='TokenReconstruction', after_block=None, k=20,
             temperature=30.0)
    ]))
