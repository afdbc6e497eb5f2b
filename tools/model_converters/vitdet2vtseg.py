"""Convert a ViTDet backbone (detectron2 ``ViT`` / mmdet
``projects/ViTDet``) to the vtseg ViT with windowed attention and relative
positions, or back (``--reverse``).

    python tools/model_converters/vitdet2vtseg.py SRC DST
        [--prefix P] [--num-heads N] [--window-size W]
        [--global-blocks I ...] [--img-size S | H W] [--pos-hw H W] [--force]
    python tools/model_converters/vitdet2vtseg.py VTSEG.pth DST --reverse
        [--layout {detectron2,mmdet,plain}] [--no-cls-entry] [--force]

SRC is read weights-only (a ``.pth`` / ``.pt`` torch file; detectron2
model-zoo ``.pkl`` pickles are refused). DST gets ``{'state_dict': ...,
'meta': {...}}`` (``--reverse``: ``{'model': ...}`` for detectron2) and is
never overwritten without ``--force``. The mapping lives in
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
    sys.exit(cli_main('vitdet'))
