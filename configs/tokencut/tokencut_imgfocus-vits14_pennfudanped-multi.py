# Multi-object discovery on Penn-Fudan (several pedestrians per image).
_base_ = ['./tokencut_imgfocus-vits14_pennfudanped.py']
model = dict(max_objects=3, multi_mode='recursive',
             multi_cfg=dict(min_tokens=4, max_eigval=0.9, max_area=0.6))
