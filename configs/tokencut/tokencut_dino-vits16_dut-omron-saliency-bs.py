# TokenCut saliency + bilateral solver (sigmas 16 / 16 / 8, lambda 256, 25 CG
# iterations, tol 1e-5), DINO ViT-S/16 on DUT-OMRON; the soft output is scored.
# Published maxF / IoU / Acc (%): 69.7 / 61.8 / 89.7.
_base_ = ['./tokencut_dino-vits16_dut-omron-saliency.py']
model = dict(bilateral_solver=dict())
