# The Penn-Fudan CPU experiment at 672 px with the last four backbone blocks
# fine-tuned (the frozen 672 px model fits its training images poorly, box AP
# 0.60 / mask AP 0.47, and localises coarsely: docs/detection.md). As
# mask-rcnn_vits14-imgfocus-frozen_simplefpn_pennfudan-672.py, except:
# - blocks 8-11 and the final norm train, at 0.1x the heads' lr (the DToP
#   fine-tuning recipe of docs/dtop.md), drop path 0.1 (ViTDet) in them;
# - the frozen part (embeddings, blocks 0-7) is memoised per (image, flip)
#   through ViT.frozen_prefix, so only the trained blocks run per iteration.
_base_ = ['./mask-rcnn_vits14-imgfocus-frozen_simplefpn_pennfudan-672.py']
model = dict(backbone=dict(frozen_blocks=8, drop_path_rate=0.1))
custom_hooks = [
    dict(type='vtseg.engine.FrozenBackboneCacheHook', max_items=200,
         method='backbone.frozen_prefix',
         depends_on=r'backbone\.(patch_embed|cls_token|reg_token|pos_embed|'
         r'pos_drop|blocks\.[0-7]\.)')
]
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
