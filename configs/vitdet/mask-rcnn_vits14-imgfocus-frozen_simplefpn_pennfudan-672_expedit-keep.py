# The 672 px Expedit detector config with the content-adaptive variant
# (docs/expedit.md, "Keeping outliers unclustered"): 5% of the tokens, those
# their cluster represents worst, stay out of the clustering, and later
# blocks weight every token by the patches it stands for (prop_attn).
_base_ = ['./mask-rcnn_vits14-imgfocus-frozen_simplefpn_pennfudan-672_expedit.py']
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=5, grid=0.5, n_iters=5,
             temperature=30.0, window_size=5,
             temperature_mode='relative', keep_outliers=0.05,
             prop_attn=True),
        dict(type='TokenReconstruction', after_block=None, k=20,
             temperature=30.0)
    ]))
