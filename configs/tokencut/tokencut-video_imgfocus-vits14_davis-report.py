# The report sequences of the TokenCut protocol
# (docs/protocol.md): never used to choose a setting.
#   python tools/test.py configs/tokencut/tokencut-video_imgfocus-vits14_davis-report.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = ['./tokencut-video_imgfocus-vits14_davis-folder.py']
test_dataloader = dict(
    dataset=dict(sequences=['camel', 'cows', 'dog', 'goat', 'kite-surf',
                            'libby', 'parkour']))
val_dataloader = test_dataloader
