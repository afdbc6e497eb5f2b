# Expedit token stages of the 672 px Penn-Fudan detectors (docs/detection.md),
# training-free: cluster the patch tokens after block 5 to 0.5 of the token
# grid (soft k-means, 5 iterations, window 5, temperatures relative to the
# feature scale), run the later blocks on the clusters, rebuild the full map
# at the backbone output (k = 20) before the neck. Chosen on the train images
# of the frozen 672 px detector. Used as
#   model = dict(backbone=dict(token_stages={{_base_.expedit_stages}}))
expedit_stages = [
    dict(type='TokenClustering', after_block=5, grid=0.5, n_iters=5,
         temperature=30.0, window_size=5, temperature_mode='relative'),
    dict(type='TokenReconstruction', after_block=None, k=20,
         temperature=30.0)
]
