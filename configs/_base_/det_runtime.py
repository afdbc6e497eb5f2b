# Runtime for the mmdet detectors (configs/vitdet, docs/detection.md).
# default_scope='mmdet': every mmdet component is found by its plain name.
# vtseg components are reached with `_scope_='vtseg'` on their dict (backbone,
# neck; their own sub-modules are then built from vtseg's registry) or by
# their full import path (`type='vtseg.datasets.PennFudanDetDataset'`,
# `constructor='vtseg.engine.optimizers.ViTLayerDecayOptimizerConstructor'`),
# which mmengine resolves by importing the module. `custom_imports` imports
# vtseg first, which installs the pure-PyTorch mmcv ops on mmcv-lite.
default_scope = 'mmdet'
custom_imports = dict(
    imports=['vtseg.models', 'vtseg.datasets', 'vtseg.engine'],
    allow_failed_imports=False)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py and tools/test.py switch to gloo when CUDA is absent.
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
