# The Penn-Fudan CPU experiment with the standard 4-conv mask head and a
# 1024-wide box head; everything else (data, split, schedule) as in
# mask-rcnn_vits14-imgfocus-frozen_simplefpn_pennfudan-448.py
# (docs/detection.md).
_base_ = ['./mask-rcnn_vits14-imgfocus-frozen_simplefpn_pennfudan-448.py']
model = dict(
    roi_head=dict(
        bbox_head=dict(fc_out_channels=1024),
        mask_head=dict(num_convs=4)))
