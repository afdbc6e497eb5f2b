"""Side-by-side CAMs of several ToCo / CAM models on a few images (the
figure in docs/toco.md): one row per image, columns image, then each
model's CAM overlay (classes from the image-level label CSV, or the
classes each model predicts).

    python tools/analysis_tools/toco_cam_figure.py IMAGE [IMAGE ...] \
        --models CONFIG:CHECKPOINT:TITLE [CONFIG:CHECKPOINT:TITLE ...] \
        [--label-csv FILE] [--height 160] --out FIGURE.jpg [--force]
"""
import argparse
import os
import os.path as osp
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('images', nargs='+')
    p.add_argument('--models', nargs='+', required=True,
                   help='CONFIG:CHECKPOINT:TITLE per column')
    p.add_argument('--label-csv', help='image-level labels (id + classes)')
    p.add_argument('--height', type=int, default=160,
                   help='row height in pixels')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out', required=True)
    p.add_argument('--force', action='store_true')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if osp.exists(args.out) and not args.force:
        raise SystemExit(f'{args.out} exists; use --force to overwrite')
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    import cv2
    import numpy as np
    import torch
    from vtseg.apis import init_model
    from vtseg.apis.io import cam_overlay
    from vtseg.datasets import read_image_label_csv
    from vtseg.utils.image_io import read_image
    torch.set_num_threads(args.threads)

    models = []
    for spec in args.models:
        parts = spec.split(':')
        if len(parts) != 3:
            raise SystemExit(f'--models entry {spec!r} is not '
                             'CONFIG:CHECKPOINT:TITLE')
        models.append((init_model(parts[0], parts[1]), parts[2]))
    names = list(models[0][0].dataset_meta['classes'][1:])
    table = read_image_label_csv(args.label_csv, names) \
        if args.label_csv else {}
    rows = []
    for path in args.images:
        img = read_image(path)
        scale = args.height / img.shape[0]
        size = (int(round(img.shape[1] * scale)), args.height)
        key = osp.splitext(osp.basename(path))[0]
        classes = [names[i] for i in np.flatnonzero(table[key])] \
            if key in table else []
        cells = [cv2.resize(img, size)]
        for model, title in models:
            panel, shown = cam_overlay(model, img, classes)
            panel = cv2.resize(panel[..., ::-1], size)
            cv2.putText(panel, f'{title}: {", ".join(shown)}', (4, 14),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                        cv2.LINE_AA)
            cells.append(panel)
        rows.append(np.concatenate(cells, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)))
            for r in rows]
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, np.concatenate(rows, axis=0),
                [cv2.IMWRITE_JPEG_QUALITY, 80])
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
