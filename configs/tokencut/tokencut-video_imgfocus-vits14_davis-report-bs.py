# The report sequences of the TokenCut protocol with the bilateral solver,
# the setting chosen on the tuning sequences: the video headline of
# docs/tokencut.md.
#   python tools/test.py configs/tokencut/tokencut-video_imgfocus-vits14_davis-report-bs.py \
#       checkpoints/imgfocus_vits14.pth
_base_ = ['./tokencut-video_imgfocus-vits14_davis-report.py']
model = dict(bilateral_solver=dict())
