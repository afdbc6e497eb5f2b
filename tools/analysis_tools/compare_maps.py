"""Agreement of two models' binary maps: mean IoU between the maps of the
same images in two prediction folders (e.g. a plain and an accelerated
model, both written by ``tools/test.py CONFIG CKPT --out DIR``).

    python tools/analysis_tools/compare_maps.py DIR_A DIR_B [--threshold 0.5]

Maps are 8-bit PNGs (value round(255 p)); a pixel is foreground when
p > threshold. Images whose maps are both empty count as IoU 1.
"""
import argparse
import os
import os.path as osp
import sys

import cv2
import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Mean IoU between the binary '
                                'maps of two prediction folders')
    p.add_argument('dir_a')
    p.add_argument('dir_b')
    p.add_argument('--threshold', type=float, default=0.5)
    return p.parse_args(argv)


def binary_map(path: str, threshold: float) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(f'cannot read map {path}')
    if img.ndim == 3:
        img = img[..., 0]
    return img.astype(np.float64) / 255.0 > threshold


def compare(dir_a: str, dir_b: str, threshold: float = 0.5) -> dict:
    """Mean / min IoU over the maps present in both folders."""
    names = sorted(n for n in os.listdir(dir_a) if n.endswith('.png'))
    missing = [n for n in names if not osp.isfile(osp.join(dir_b, n))]
    if missing:
        raise FileNotFoundError(f'{len(missing)} maps of {dir_a} are missing '
                                f'in {dir_b}, e.g. {missing[0]}')
    ious = []
    for n in names:
        a = binary_map(osp.join(dir_a, n), threshold)
        b = binary_map(osp.join(dir_b, n), threshold)
        if a.shape != b.shape:
            raise ValueError(f'{n}: map sizes differ {a.shape} vs {b.shape}')
        union = np.logical_or(a, b).sum()
        ious.append(1.0 if union == 0 else
                    np.logical_and(a, b).sum() / union)
    ious = np.asarray(ious)
    return dict(n=len(ious), mean_iou=float(ious.mean()),
                min_iou=float(ious.min()))


def main(argv=None):
    args = parse_args(argv)
    res = compare(args.dir_a, args.dir_b, args.threshold)
    print(f'{res["n"]} maps: mean IoU {res["mean_iou"]:.4f} '
          f'(min {res["min_iou"]:.4f}) at p > {args.threshold}')
    return res


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
