# Expedit-Segmenter as shipped, Cityscapes (alpha 12, 32 x 32: 691.0 GFLOPs,
# 78.38 mIoU): no reconstruction (restore='none'), 1024 clusters, unmasked
# hard labels.
_base_ = '../segmenter/segmenter_vit-l16_mask_cityscapes-768.py'
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=11, grid=1024, n_iters=5,
             temperature=0.02, window_size=5, faithful=True)
    ]))
