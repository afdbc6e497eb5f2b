# Expedit inside the fine-tuned 672 px Penn-Fudan detector, training-free
# (test time only), with the setting chosen for the frozen 672 px detector
# on its train images and carried over unchanged (docs/detection.md):
# cluster after block 5 to 0.5 of the grid, blocks 6-11 (the fine-tuned
# 8-11 included) run on the clusters, the full map is rebuilt before the
# SimpleFPN neck. Same weights as
# mask-rcnn_vits14-imgfocus-ft4_simplefpn_pennfudan-672.py.
_base_ = [
    './mask-rcnn_vits14-imgfocus-ft4_simplefpn_pennfudan-672.py',
    '../_base_/token_stages/vitdet-expedit_l5-g0.5.py'
]
model = dict(backbone=dict(token_stages={{_base_.expedit_stages}}))
