# The tuning sequences of the TokenCut protocol with the bilateral solver
# (docs/protocol.md, docs/tokencut.md; see ..._davis-folder-bs.py).
_base_ = ['./tokencut-video_imgfocus-vits14_davis-tune.py']
model = dict(bilateral_solver=dict())
