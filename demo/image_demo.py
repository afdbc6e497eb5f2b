"""Run any vtseg model on images and write overlays (and raw masks).
For a model with token stages (e.g. an Expedit config) the speed-up over the
same model without them is measured on the first image and printed.

    python demo/image_demo.py INPUT CONFIG CHECKPOINT [--out-dir DIR]
        [--save-mask] [--device cpu] [--score-thr 0.3] [--show] [--force]

INPUT is an image file, a folder or a glob pattern. For every image
``<out-dir>/<name>.jpg`` shows the prediction (semantic classes, saliency
heat map, or instances with boxes, masks and polygons); ``--save-mask`` also
writes ``<out-dir>/masks/<name>.png`` (class ids, 0-255 saliency, or
instance ids). ``--coco-json FILE`` writes predicted instances (TokenCut
objects, ConnNet salient instances) as a COCO dataset with boxes and
polygons.
"""
import argparse
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import cv2  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

import vtseg  # noqa: E402,F401
from vtseg.apis import inference_model, init_model  # noqa: E402
from vtseg.apis.io import (check_outputs_free, list_images,  # noqa: E402
                           prediction_mask, report_speedup)
from vtseg.utils.coco_export import (data_samples_to_coco,  # noqa: E402
                                     dump_coco_json)
from vtseg.visualization import VTSegVisualizer  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='vtseg image demo')
    p.add_argument('input', help='image file, folder or glob')
    p.add_argument('config', help='model config')
    p.add_argument('checkpoint', nargs='?', default=None,
                   help='checkpoint (omit to use the config\'s init_cfg)')
    p.add_argument('--out-dir', default='outputs/image_demo')
    p.add_argument('--save-mask', action='store_true',
                   help='also write raw masks under OUT_DIR/masks')
    p.add_argument('--device', default='cpu')
    p.add_argument('--score-thr', type=float, default=0.0,
                   help='hide instances scoring below this')
    p.add_argument('--opacity', type=float, default=0.5,
                   help='semantic overlay opacity')
    p.add_argument('--coco-json', metavar='FILE',
                   help='write predicted instances as COCO JSON')
    p.add_argument('--coco-segmentation', default='auto',
                   choices=['auto', 'polygon', 'rle'],
                   help='COCO masks: polygons, RLE, or auto (RLE only for '
                   'masks with holes, which COCO polygons cannot express)')
    p.add_argument('--show', action='store_true', help='show each result')
    p.add_argument('--force', action='store_true',
                   help='overwrite existing outputs')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    files = list_images(args.input)
    stems = [osp.splitext(osp.basename(f))[0] for f in files]
    overlays = [osp.join(args.out_dir, s + '.jpg') for s in stems]
    masks = [osp.join(args.out_dir, 'masks', s + '.png') for s in stems]
    check_outputs_free(overlays + (masks if args.save_mask else []) +
                       ([args.coco_json] if args.coco_json else []),
                       args.force)
    model = init_model(args.config, args.checkpoint, args.device,
                       cfg_options=args.cfg_options)
    vis = VTSegVisualizer(alpha=args.opacity, score_thr=args.score_thr)
    vis.dataset_meta = model.dataset_meta
    os.makedirs(args.out_dir, exist_ok=True)
    if args.save_mask:
        os.makedirs(osp.join(args.out_dir, 'masks'), exist_ok=True)
    report_speedup(model, cv2.imread(files[0], cv2.IMREAD_COLOR))
    total = 0.0
    results = []
    for path, overlay_path, mask_path in zip(files, overlays, masks):
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f'cannot read image {path} (not an image or '
                             'corrupt)')
        start = time.perf_counter()
        result = inference_model(model, path)
        total += time.perf_counter() - start
        if args.coco_json:
            results.append(result)
        drawn = vis.draw_prediction(img[..., ::-1].copy(), result)
        cv2.imwrite(overlay_path, drawn[..., ::-1])
        if args.save_mask:
            cv2.imwrite(mask_path, prediction_mask(result))
        if args.show:
            vis.show(drawn, win_name=osp.basename(path), wait_time=0)
    print(f'{len(files)} images, {1000 * total / len(files):.1f} ms per '
          f'image (model only, {args.device}); results in '
          f'{osp.abspath(args.out_dir)}')
    if args.coco_json:
        if not any('pred_instances' in r for r in results):
            raise SystemExit('--coco-json: this model predicts no instances')
        coco = data_samples_to_coco(
            results, model.dataset_meta.get('classes'),
            segmentation=args.coco_segmentation)
        dump_coco_json(coco, args.coco_json)
        print(f'{len(coco["annotations"])} objects written to '
              f'{args.coco_json}')


if __name__ == '__main__':
    main()
