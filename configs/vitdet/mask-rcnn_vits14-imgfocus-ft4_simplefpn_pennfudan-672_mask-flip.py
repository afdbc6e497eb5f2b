# Test-time setting of the fine-tuned 672 px detector (docs/detection.md),
# chosen on the 34 train images among mask_thr_binary 0.4 / 0.5 / 0.6 x
# mirrored masks off / on: MaskFlipRCNN (the mask head also runs on the
# mirror image, probabilities averaged; boxes unchanged) and a mask
# threshold of 0.4. Same weights as
# mask-rcnn_vits14-imgfocus-ft4_simplefpn_pennfudan-672.py (training is
# MaskRCNN's).
_base_ = ['./mask-rcnn_vits14-imgfocus-ft4_simplefpn_pennfudan-672.py']
model = dict(
    type='vtseg.models.detectors.MaskFlipRCNN',
    mask_flip_test=True,
    test_cfg=dict(rcnn=dict(mask_thr_binary=0.4)))
