# DToP on CPU, phase 2 with the last six blocks trained too: as
# dtop_atm_imgfocus-vits14-frozen_camvid-360x480_prune-t0.9.py, but blocks
# 6-11 (the ones that run on pruned token sets) and the final norm are
# fine-tuned with the heads (backbone lr 2e-5, heads x10: the DToP recipe),
# so that they adapt to the context that pruning removes; blocks 0-5 stay
# frozen and their output is cached.
#   python tools/train.py configs/dtop/dtop_atm_imgfocus-vits14-ft6_camvid-360x480_prune-t0.9.py \
#       --cfg-options load_from=work_dirs/dtop_atm_imgfocus-vits14-frozen_camvid-360x480_base/iter_1000.pth
_base_ = './dtop_atm_imgfocus-vits14-frozen_camvid-360x480_prune-t0.9.py'
model = dict(backbone=dict(frozen_blocks=6))
custom_hooks = [
    dict(type='FrozenBackboneCacheHook', method='unpruned_prefix',
         max_items=800,
         depends_on=r'backbone\.(patch_embed|cls_token|pos_embed|'
         r'blocks\.[0-5]\.)'),
    dict(type='ClassCountCheckHook')
]
optim_wrapper = dict(
    optimizer=dict(lr=2e-5),
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.0)}))
