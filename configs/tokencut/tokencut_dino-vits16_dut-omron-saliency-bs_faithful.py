# Faithful TokenCut saliency + bilateral solver.
_base_ = ['./tokencut_dino-vits16_dut-omron-saliency-bs.py']
model = dict(faithful=True, solver='dense')
