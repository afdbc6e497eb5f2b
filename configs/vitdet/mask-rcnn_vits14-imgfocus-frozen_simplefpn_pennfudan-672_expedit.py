# Expedit inside the 672 px Penn-Fudan detector, training-free (test time
# only): cluster the patch tokens after block 5 to 0.5 of the token grid,
# run blocks 6-11 on the clusters, rebuild the full map at the backbone
# output before the SimpleFPN neck (stages in
# _base_/token_stages/vitdet-expedit_l5-g0.5.py). Block and grid chosen on
# the train images (the fastest setting within 2 box-AP points there,
# docs/detection.md); same weights as the plain 672 config.
_base_ = [
    './mask-rcnn_vits14-imgfocus-frozen_simplefpn_pennfudan-672.py',
    '../_base_/token_stages/vitdet-expedit_l5-g0.5.py'
]
model = dict(backbone=dict(token_stages={{_base_.expedit_stages}}))
