# Image-mode TokenCut (single-object discovery, full-resolution frames
# zero-padded to 14) on every frame of every sequence under a DAVIS-style
# folder: CorLoc against the box of each frame's annotation mask, with the
# centred-box baseline, per sequence and over all frames; plus the mask IoU
# of the discovered object per frame (mask/iou: mean per sequence, then over
# sequences).
#   python tools/test.py configs/tokencut/tokencut_imgfocus-vits14_davis-frames.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = [
    '../_base_/models/tokencut_imgfocus_vits14.py',
    '../_base_/datasets/tokencut_davis_frames.py',
    '../_base_/default_runtime.py'
]
