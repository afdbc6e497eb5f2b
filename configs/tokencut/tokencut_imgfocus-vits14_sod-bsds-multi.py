# Multi-object discovery (vtseg extension): up to 3 objects per image by
# repeated cuts of the remaining tokens; CorLoc scores the first, corloc_any
# any of them.
_base_ = ['./tokencut_imgfocus-vits14_sod-bsds.py']
model = dict(max_objects=3, multi_mode='recursive',
             multi_cfg=dict(min_tokens=4, max_eigval=0.9, max_area=0.6))
