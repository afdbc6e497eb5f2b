# DToP phase 1 (BASE) on Pascal Context (59) 480: ViT-L/16 + ATM heads
# after blocks 7, 15 and 23, 160k iterations without pruning, 4 images per
# GPU on 8 GPUs.
#   tools/dist_train.sh configs/dtop/dtop_atm_vit-l16_pascal-context-480_base.py 8
# Phase 2: dtop_atm_vit-l16_pascal-context-480_prune-t0.95.py. Reference row
# (base -> pruned): 63.0 -> 62.7 mIoU, 315.4 -> 224.3 GFLOPs (-29%).
_base_ = [
    '../_base_/models/dtop_atm_vit-l16.py',
    '../_base_/datasets/pascal_context_59.py',
    '../_base_/default_runtime.py', '../_base_/schedules/dtop_adamw.py'
]
atm_head = dict(type='ATMStageHead', in_channels=1024, channels=512,
                num_classes=59, num_layers=3, num_heads=16)
model = dict(
    data_preprocessor=dict(size=(480, 480)),
    decode_head=atm_head,
    stage_heads=[atm_head, atm_head],
    test_cfg=dict(mode='slide', crop_size=(480, 480), stride=(320, 320)))
train_dataloader = dict(batch_size=4)
val_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']),
                 dict(type='TokenStatsMetric')]
test_evaluator = val_evaluator
