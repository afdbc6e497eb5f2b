"""Convert a plain MAE ViT (facebookresearch/mae pre-training or fine-tuning
checkpoint) to the vtseg ViT in the ViTDet layout (windowed blocks, zero
relative-position tables, no cls token, no final norm): the initialisation
of the ViTDet configs in ``configs/vitdet/*_coco.py``.

    python tools/model_converters/mae2vtseg.py mae_pretrain_vit_base.pth \
        checkpoints/mae_vitdet_b.pth --prefix backbone.
        [--window-size 14] [--global-blocks 2 5 8 11] [--img-size 1024]
        [--num-heads N] [--force]

SRC is read weights-only; DST gets ``{'state_dict': ..., 'meta': {...}}``
and is never overwritten without ``--force``. The mapping lives in
``vtseg/converters/ckpt_convert.py`` (``convert_mae_vit``); details in
``docs/model_converters.md``.
"""
import os.path as osp
import sys

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import vtseg  # noqa: E402,F401  (compat layer: weights-only loading)
from vtseg.converters.ckpt_convert import cli_main  # noqa: E402

if __name__ == '__main__':
    sys.exit(cli_main('mae'))
