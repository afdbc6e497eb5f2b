# DToP BASE on ADE20K 512 with Segmenter's mask transformer (2 layers,
# d_model 768) as every stage head instead of ATM
# (the reference ships ATM only; zbwxp/Dynamic-Token-Pruning#2 asks for
# these). Same backbone, stages, schedule and recipe as the ATM config; no
# published numbers. Confidence for pruning: softmax over classes.
_base_ = './dtop_atm_vit-b16_ade20k-512_base.py'
stage_head = dict(type='MaskTransformerStageHead', in_channels=768,
                  num_classes=150, d_model=768, n_layers=2, n_heads=12,
                  dropout=0.0)
# _delete_: replace the ATM head's keys instead of merging into them
model = dict(decode_head=dict(stage_head, _delete_=True),
             stage_heads=[stage_head, stage_head])
