# Per-frame baseline for the video mode: image TokenCut (single-object
# discovery, full 854x480 frames zero-padded to 14) on every blackswan frame
# independently, scored with the same per-frame IoU (VideoIoUMetric).
#   python tools/test.py configs/tokencut/tokencut_imgfocus-vits14_davis-blackswan-frames.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = [
    '../_base_/models/tokencut_imgfocus_vits14.py',
    '../_base_/datasets/tokencut_sod_bsds.py',
    '../_base_/default_runtime.py'
]
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='SaliencyDataset',
        data_root='../shared/data/davis2016_video',
        data_prefix=dict(img_path='blackswan/JPEGImages',
                         seg_map_path='blackswan/Annotations'),
        test_mode=True,
        pipeline=[
            dict(type='LoadImageFromFile', imdecode_backend='pillow'),
            dict(type='LoadBinaryMask'),
            dict(type='PackSegInputs')
        ]))
val_dataloader = test_dataloader
test_evaluator = [dict(type='VideoIoUMetric')]
val_evaluator = test_evaluator
