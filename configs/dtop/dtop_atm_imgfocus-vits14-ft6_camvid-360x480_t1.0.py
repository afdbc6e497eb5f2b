# Control run for dtop_atm_imgfocus-vits14-ft6_camvid-360x480_prune-t0.9.py:
# the same fine-tuning (blocks 6-11 and heads, 300 iterations from the BASE
# checkpoint) without pruning (thresh 1.0), i.e. the reference's "base"
# column for the CPU experiment (docs/dtop.md).
#   python tools/train.py configs/dtop/dtop_atm_imgfocus-vits14-ft6_camvid-360x480_t1.0.py \
#       --cfg-options load_from=work_dirs/dtop_atm_imgfocus-vits14-frozen_camvid-360x480_base/iter_1000.pth
_base_ = './dtop_atm_imgfocus-vits14-ft6_camvid-360x480_prune-t0.9.py'
model = dict(thresh=1.0)
