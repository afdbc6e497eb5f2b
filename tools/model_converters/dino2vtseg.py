"""Convert a facebookresearch/dino ViT checkpoint (backbone, or a full
teacher / student training checkpoint) to the vtseg ViT key layout.

    python tools/model_converters/dino2vtseg.py SRC DST
        [--prefix P] [--num-heads N] [--pos-hw H W]
        [--which teacher|student] [--force]

SRC is read weights-only; DST gets ``{'state_dict': ..., 'meta': {...}}``
and is never overwritten without ``--force``. The mapping lives in
``vtseg/converters/ckpt_convert.py``; key tables and caveats in
``docs/model_converters.md``.
"""
import os.path as osp
import sys

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import vtseg  # noqa: E402,F401  (compat layer: weights-only loading)
from vtseg.converters.ckpt_convert import cli_main  # noqa: E402

if __name__ == '__main__':
    sys.exit(cli_main('dino'))
