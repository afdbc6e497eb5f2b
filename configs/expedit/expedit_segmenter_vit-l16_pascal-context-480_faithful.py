# Expedit-Segmenter as shipped, Pascal Context (alpha 14, 20 x 20: 251.2
# GFLOPs, 58.27 mIoU): no reconstruction (restore='none'), 400 clusters,
# unmasked hard labels.
_base_ = '../segmenter/segmenter_vit-l16_mask_pascal-context-480.py'
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=13, grid=400, n_iters=5,
             temperature=0.02, window_size=5, faithful=True)
    ]))
