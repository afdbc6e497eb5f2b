# DUTS-TE (Wang et al., CVPR 2017; 5,019 images) for TokenCut's saliency
# mode: the ECSSD settings (tokencut_saliency_ecssd.py) on the DUTS-TE
# layout.
_base_ = './tokencut_saliency_ecssd.py'
data_root = 'data/DUTS'
test_dataloader = dict(dataset=dict(data_root=data_root, layout='duts-te'))
val_dataloader = test_dataloader
