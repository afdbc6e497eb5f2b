# Faithful TokenCut saliency: dense solver, eigenvector without sign fix.
_base_ = ['./tokencut_dino-vits16_duts-te-saliency.py']
model = dict(faithful=True, solver='dense')
