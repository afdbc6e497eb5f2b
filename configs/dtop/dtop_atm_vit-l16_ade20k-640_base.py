# DToP phase 1 (BASE) on ADE20K 640: ViT-L/16 + ATM heads after blocks
# 7, 15 and 23, 160k iterations without pruning, 4 images per GPU on 8 GPUs.
#   tools/dist_train.sh configs/dtop/dtop_atm_vit-l16_ade20k-640_base.py 8
# Phase 2: dtop_atm_vit-l16_ade20k-640_prune-t0.95.py. Reference row
# (base -> pruned): 53.3 -> 52.8 mIoU, 617.0 -> 412.8 GFLOPs (-33%).
_base_ = [
    '../_base_/models/dtop_atm_vit-l16.py',
    '../_base_/datasets/ade20k_640x640.py',
    '../_base_/default_runtime.py', '../_base_/schedules/dtop_adamw.py'
]
atm_head = dict(type='ATMStageHead', in_channels=1024, channels=512,
                num_classes=150, num_layers=3, num_heads=8)
model = dict(
    data_preprocessor=dict(size=(640, 640)),
    decode_head=atm_head,
    stage_heads=[atm_head, atm_head],
    test_cfg=dict(mode='slide', crop_size=(640, 640), stride=(320, 320)))
train_dataloader = dict(batch_size=4)
val_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']),
                 dict(type='TokenStatsMetric')]
test_evaluator = val_evaluator
