# Expedit inside the Penn-Fudan detector, training-free (test time only):
# cluster the patch tokens after block 3 to 0.6 of the token grid (soft
# k-means, 5 iterations, window 5, temperatures relative to the feature
# scale, as tuned for this backbone in docs/expedit.md), run blocks 4-11 on
# the clusters, rebuild the full map at the backbone output (k = 20) before
# the SimpleFPN neck. Same weights as the plain config; measured with
# tools/analysis_tools/det_token_stages.py (docs/detection.md).
_base_ = ['./mask-rcnn_vits14-imgfocus-frozen_simplefpn_pennfudan-448.py']
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=3, grid=0.6, n_iters=5,
             temperature=30.0, window_size=5,
             temperature_mode='relative'),
        dict(type='TokenReconstruction', after_block=None, k=20,
             temperature=30.0)
    ]))
