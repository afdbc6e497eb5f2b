# TokenCut saliency + bilateral solver (sigmas 16 / 16 / 8, lambda 256, 25 CG
# iterations, tol 1e-5), DINO ViT-S/16 on ECSSD; the soft output is scored.
# Published maxF / IoU / Acc (%): 87.4 / 77.2 / 93.4.
_base_ = ['./tokencut_dino-vits16_ecssd-saliency.py']
model = dict(bilateral_solver=dict())
