# Plain-CAM baseline of toco_imgfocus-vits14_voc-subset-224-ft4.py with the
# same budget (issue 12, point 5; docs/toco.md): L_cls + L_seg, no auxiliary
# CAM, no PTC, no CTC.
#   OMP_NUM_THREADS=1 python tools/train.py \
#       configs/toco/toco_imgfocus-vits14_voc-subset-224_cam-ft4.py
_base_ = './toco_imgfocus-vits14_voc-subset-224-ft4.py'
model = dict(aux_weight=0.0, loss_ptc=dict(loss_weight=0.0),
             loss_ctc=dict(loss_weight=0.0))
