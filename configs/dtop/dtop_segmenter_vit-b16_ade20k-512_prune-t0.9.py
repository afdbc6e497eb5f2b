# DToP phase 2 with Segmenter mask-transformer stage heads (2 layers,
# d_model 768): fine-tune the BASE model with pruning on (threshold 0.9),
# 40k iterations.
_base_ = './dtop_atm_vit-b16_ade20k-512_prune-t0.9.py'
stage_head = dict(type='MaskTransformerStageHead', in_channels=768,
                  num_classes=150, d_model=768, n_layers=2, n_heads=12,
                  dropout=0.0)
# _delete_: replace the ATM head's keys instead of merging into them
model = dict(decode_head=dict(stage_head, _delete_=True),
             stage_heads=[stage_head, stage_head])
load_from = 'work_dirs/dtop_segmenter_vit-b16_ade20k-512_base/iter_160000.pth'
