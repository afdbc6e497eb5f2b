# DToP on CPU, phase 2: fine-tune the heads of the BASE model with pruning on
# (auxiliary heads' threshold 0.9, top 5 tokens per class kept), so that
# later heads learn on the pruned token sets they will see. Only the tokens
# of the first stage are cached now (later blocks run on the pruned sets
# each step, without gradients: the backbone stays frozen).
#   python tools/train.py configs/dtop/dtop_atm_imgfocus-vits14-frozen_camvid-360x480_prune-t0.9.py \
#       --cfg-options load_from=work_dirs/dtop_atm_imgfocus-vits14-frozen_camvid-360x480_base/iter_1000.pth
# Evaluate at another threshold: tools/test.py ... --cfg-options model.thresh=0.95
_base_ = './dtop_atm_imgfocus-vits14-frozen_camvid-360x480_base.py'
model = dict(thresh=0.9, backbone=dict(init_cfg=None))
max_iters = 300
optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=20),
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=20, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
load_from = ('work_dirs/dtop_atm_imgfocus-vits14-frozen_camvid-360x480_base/'
             'iter_1000.pth')
