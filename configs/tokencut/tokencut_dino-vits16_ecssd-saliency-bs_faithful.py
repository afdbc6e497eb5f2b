# Faithful TokenCut saliency + bilateral solver.
_base_ = ['./tokencut_dino-vits16_ecssd-saliency-bs.py']
model = dict(faithful=True, solver='dense')
