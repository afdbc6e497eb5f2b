# DUT-OMRON (Yang et al., CVPR 2013; 5,168 images) for TokenCut's saliency
# mode: the ECSSD settings (tokencut_saliency_ecssd.py) on the DUT-OMRON
# layout. Its masks have soft edges; as the reference (raw value > 0.5),
# any nonzero value counts as object.
_base_ = './tokencut_saliency_ecssd.py'
data_root = 'data/DUT-OMRON'
test_dataloader = dict(dataset=dict(data_root=data_root, layout='dut-omron'))
val_dataloader = test_dataloader
