# DToP phase 1 (BASE) on ADE20K 512: ViT-B/16 + ATM heads after blocks 5, 7
# and 11, trained 160k iterations without pruning (thresh 1.0), 4 images
# per GPU on 8 GPUs (the reference's setting).
#   tools/dist_train.sh configs/dtop/dtop_atm_vit-b16_ade20k-512_base.py 8
# Reference row (zbwxp/Dynamic-Token-Pruning README): 49.6 mIoU, 109.9
# GFLOPs; phase 2: dtop_atm_vit-b16_ade20k-512_prune-t0.9.py.
_base_ = [
    '../_base_/models/dtop_atm_vit-b16.py', '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime.py', '../_base_/schedules/dtop_adamw.py'
]
model = dict(data_preprocessor=dict(size=(512, 512)))
train_dataloader = dict(batch_size=4)
val_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']),
                 dict(type='TokenStatsMetric')]
test_evaluator = val_evaluator
