# DINOv2 ViT-S/14 with the reference's settings: raw keys, dense solver,
# reference IoU. Raw DINOv2-style keys can make the graph complete (all
# cosines > tau); the uniform graph then gives the whole image (defined result).
_base_ = ['./tokencut_dinov2-vits14_voc07.py']
model = dict(feature='k', faithful=True, solver='dense')
test_evaluator = dict(type='CorLocMetric', faithful=True)
val_evaluator = test_evaluator
