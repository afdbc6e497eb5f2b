# Image-mode TokenCut on the frames of the report sequences of the protocol
# (docs/protocol.md): never used to choose a setting.
#   python tools/test.py configs/tokencut/tokencut_imgfocus-vits14_davis-frames-report.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = ['./tokencut_imgfocus-vits14_davis-frames.py']
test_dataloader = dict(
    dataset=dict(sequences=['camel', 'cows', 'dog', 'goat', 'kite-surf',
                            'libby', 'parkour']))
val_dataloader = test_dataloader
