# Image-mode TokenCut on the frames of the tuning sequences of the protocol
# (docs/protocol.md).
#   python tools/test.py configs/tokencut/tokencut_imgfocus-vits14_davis-frames-tune.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = ['./tokencut_imgfocus-vits14_davis-frames.py']
test_dataloader = dict(
    dataset=dict(sequences=['blackswan', 'bmx-trees', 'breakdance']))
val_dataloader = test_dataloader
