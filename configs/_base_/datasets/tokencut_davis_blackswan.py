# DAVIS 2016 'blackswan' (50 frames 854x480; Perazzi et al., CVPR 2016) from
# ../shared/data/davis2016_video: the DAVIS folder setting
# (tokencut_davis_folder.py) restricted to one sequence.
_base_ = ['./tokencut_davis_folder.py']
test_dataloader = dict(dataset=dict(sequences=['blackswan']))
val_dataloader = test_dataloader
