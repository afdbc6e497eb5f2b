# Expedit inside the fine-tuned 672 px Penn-Fudan detector, training-free
# (test time only), with the setting chosen for the frozen 672 px detector
# on its train images and carried over unchanged (docs/detection.md):
# cluster after block 5 to 0.5 of the grid, blocks 6-11 (the fine-tuned
# 8-11 included) run on the clusters, the full map is rebuilt (k = 20)
# before the SimpleFPN neck. Same weights as
# mask-rcnn_vits14-imgfocus-ft4_simplefpn_pennfudan-672.py.
_base_ = ['./mask-rcnn_vits14-imgfocus-ft4_simplefpn_pennfudan-672.py']
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=5, grid=0.5, n_iters=5,
             temperature=30.0, window_size=5,
             temperature_mode='relative'),
        dict(type='TokenReconstruction', after_block=None, k=20,
             temperature=30.0)
    ]))
