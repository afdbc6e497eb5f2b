# Plain-CAM baseline of toco_imgfocus-vits14_voc-subset-224.py with the same
# budget (issue 12, point 5; docs/toco.md): classification loss on the
# final-layer CAM and the segmentation head on its PAR-refined pseudo labels
# (the paper's "L_cls + L_seg" baseline); no auxiliary CAM, no PTC, no CTC.
#   OMP_NUM_THREADS=1 python tools/train.py \
#       configs/toco/toco_imgfocus-vits14_voc-subset-224_cam.py
_base_ = './toco_imgfocus-vits14_voc-subset-224.py'
model = dict(aux_weight=0.0, loss_ptc=dict(loss_weight=0.0),
             loss_ctc=dict(loss_weight=0.0))
