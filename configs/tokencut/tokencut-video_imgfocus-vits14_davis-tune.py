# The tuning sequences of the TokenCut protocol
# (docs/protocol.md): the foreground rule was chosen on these.
#   python tools/test.py configs/tokencut/tokencut-video_imgfocus-vits14_davis-tune.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = ['./tokencut-video_imgfocus-vits14_davis-folder.py']
test_dataloader = dict(
    dataset=dict(sequences=['blackswan', 'bmx-trees', 'breakdance']))
val_dataloader = test_dataloader
