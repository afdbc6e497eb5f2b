# The Penn-Fudan CPU experiment with the standard 4-conv mask head and a
# longer schedule (36 epochs, lr x0.1 at 28 and 33); everything else as in
# mask-rcnn_vits14-imgfocus-frozen_simplefpn_pennfudan-448.py
# (docs/detection.md).
_base_ = ['./mask-rcnn_vits14-imgfocus-frozen_simplefpn_pennfudan-448.py']
model = dict(roi_head=dict(mask_head=dict(num_convs=4)))
max_epochs = 36
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=60),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[28, 33], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
