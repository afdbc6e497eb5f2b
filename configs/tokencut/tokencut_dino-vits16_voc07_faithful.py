# Faithful TokenCut (reference behaviour): dense float64 generalised eigh and
# the reference's IoU (1e-7 added to box heights). Published CorLoc: 68.8%.
#   python tools/test.py configs/tokencut/tokencut_dino-vits16_voc07_faithful.py \
#       checkpoints/dino_vits16_tokencut.pth
_base_ = ['./tokencut_dino-vits16_voc07.py']
model = dict(faithful=True, solver='dense')
test_evaluator = dict(type='CorLocMetric', faithful=True)
val_evaluator = test_evaluator
