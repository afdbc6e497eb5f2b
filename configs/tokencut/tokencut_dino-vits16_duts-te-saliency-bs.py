# TokenCut saliency + bilateral solver (sigmas 16 / 16 / 8, lambda 256, 25 CG
# iterations, tol 1e-5), DINO ViT-S/16 on DUTS-TE; the soft output is scored.
# Published maxF / IoU / Acc (%): 75.5 / 62.4 / 91.4.
_base_ = ['./tokencut_dino-vits16_duts-te-saliency.py']
model = dict(bilateral_solver=dict())
