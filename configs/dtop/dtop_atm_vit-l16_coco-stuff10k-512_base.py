# DToP phase 1 (BASE) on COCO-Stuff-10k 512: ViT-L/16 + ATM heads after blocks
# 7, 15 and 23, 160k iterations without pruning, 4 images per GPU on 8 GPUs.
#   tools/dist_train.sh configs/dtop/dtop_atm_vit-l16_coco-stuff10k-512_base.py 8
# Phase 2: dtop_atm_vit-l16_coco-stuff10k-512_prune-t0.95.py. Reference row
# (base -> pruned): 47.4 -> 47.1 mIoU, 366.9 -> 276.2 GFLOPs (-25%).
_base_ = [
    '../_base_/models/dtop_atm_vit-l16.py',
    '../_base_/datasets/coco-stuff10k.py',
    '../_base_/default_runtime.py', '../_base_/schedules/dtop_adamw.py'
]
atm_head = dict(type='ATMStageHead', in_channels=1024, channels=512,
                num_classes=171, num_layers=3, num_heads=16)
model = dict(
    data_preprocessor=dict(size=(512, 512)),
    decode_head=atm_head,
    stage_heads=[atm_head, atm_head],
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
train_dataloader = dict(batch_size=4)
val_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']),
                 dict(type='TokenStatsMetric')]
test_evaluator = val_evaluator
