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
objects, ConnNet salient instances, mmdet detectors: boxes, instance masks,
class names, scores above ``--score-thr``) as a COCO dataset with boxes and
polygons. Detector configs (configs/vitdet, docs/detection.md) work as they
are.

For weakly supervised models with CAMs (ToCo) the overlay gets a CAM panel
beside the segmentation: the multi-scale CAM of the classes the image
classifier predicts, or of ``--cam-classes`` (``--no-cam-view`` leaves it
out).

For DToP models (token pruning) the overlay gets a second panel, the
pruning view: each token coloured by the stage that finalised it, with each
stage's share (``--no-pruning-view`` leaves it out).

``<name>`` is the file stem; inputs with the same stem (``a.jpg``,
``a.png``) get ``a_jpg`` / ``a_png`` (``vtseg.apis.io.output_stems``), so
no result replaces another. Outputs never overwrite an input, and an output
folder that holds input images is refused (``--force`` only allows
overwriting earlier outputs). Files that cannot be read (empty, corrupt,
truncated) or processed are skipped with their name and the reason, the
others are processed, and a summary lists what was skipped (exit status 1
when anything was skipped; docs/reliability.md).
"""
import argparse
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

import vtseg  # noqa: E402,F401
from vtseg.apis import inference_model  # noqa: E402
from vtseg.apis.io import (IMAGE_EXTS, cam_overlay,  # noqa: E402
                           check_not_inputs, check_outputs_free,
                           init_demo_model, is_cam_model, list_inputs,
                           output_stems, prediction_mask, report_speedup)
from vtseg.utils.coco_export import (data_samples_to_coco,  # noqa: E402
                                     dump_coco_json)
from vtseg.utils.image_io import ImageReadError, read_image  # noqa: E402
from vtseg.visualization import VTSegVisualizer  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='vtseg image demo')
    p.add_argument('input', help='image file, folder or glob')
    p.add_argument('config', help='model config')
    p.add_argument('checkpoint', nargs='?', default=None,
                   help='checkpoint (omit to use the config\'s init_cfg; '
                   'refused if that leaves weights random)')
    p.add_argument('--out-dir', default='outputs/image_demo')
    p.add_argument('--save-mask', action='store_true',
                   help='also write raw masks under OUT_DIR/masks')
    p.add_argument('--device', default='cpu')
    p.add_argument('--score-thr', type=float, default=0.0,
                   help='hide instances scoring below this (overlay and '
                   '--coco-json; e.g. 0.3 for detectors)')
    p.add_argument('--opacity', type=float, default=0.5,
                   help='semantic overlay opacity')
    p.add_argument('--coco-json', metavar='FILE',
                   help='write predicted instances as COCO JSON')
    p.add_argument('--coco-segmentation', default='auto',
                   choices=['auto', 'polygon', 'rle'],
                   help='COCO masks: polygons, RLE, or auto (RLE only for '
                   'masks with holes, which COCO polygons cannot express)')
    p.add_argument('--no-pruning-view', action='store_true',
                   help='DToP models: do not draw the token-stage panel')
    p.add_argument('--cam-classes', default='',
                   help='CAM models: comma-separated class names to show '
                   '(default: the classes the model predicts)')
    p.add_argument('--no-cam-view', action='store_true',
                   help='CAM models (ToCo): do not draw the CAM panel')
    p.add_argument('--show', action='store_true', help='show each result')
    p.add_argument('--force', action='store_true',
                   help='overwrite existing outputs (never an input)')
    p.add_argument('--partial-load', action='store_true',
                   help='load only the checkpoint tensors that fit the '
                   'model (default: strict)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def above_score(result, thr: float):
    """The result with the instances scoring below ``thr`` left out (what
    the overlay shows is what ``--coco-json`` writes)."""
    inst = result.get('pred_instances')
    if thr <= 0 or inst is None or 'scores' not in inst:
        return result
    out = result.clone()
    out.pred_instances = inst[inst.scores >= thr]
    return out


def summarize_skipped(skipped, processed) -> str:
    """The end-of-run summary of skipped inputs (one line per file)."""
    lines = [f'skipped {len(skipped)} of {len(skipped) + processed} input '
             'file(s):']
    lines += [f'  {path}: {why}' for path, why in skipped]
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    files, not_images = list_inputs(args.input)
    stems = output_stems(files)
    overlays = [osp.join(args.out_dir, s + '.jpg') for s in stems]
    masks = [osp.join(args.out_dir, 'masks', s + '.png') for s in stems]
    outputs = overlays + (masks if args.save_mask else []) + \
        ([args.coco_json] if args.coco_json else [])
    try:
        check_not_inputs(outputs, files, [args.out_dir] + (
            [osp.join(args.out_dir, 'masks')] if args.save_mask else []))
        check_outputs_free(outputs, args.force, inputs=files)
    except FileExistsError as err:
        raise SystemExit(f'error: {err}') from None
    try:
        model = init_demo_model(args.config, args.checkpoint, args.device,
                                args.cfg_options, args.partial_load)
    except ValueError as err:
        raise SystemExit(f'error: {err}') from None
    vis = VTSegVisualizer(alpha=args.opacity, score_thr=args.score_thr)
    vis.dataset_meta = model.dataset_meta
    os.makedirs(args.out_dir, exist_ok=True)
    if args.save_mask:
        os.makedirs(osp.join(args.out_dir, 'masks'), exist_ok=True)
    skipped = [(f, 'not an image file (extension not in '
                f'{", ".join(IMAGE_EXTS)})') for f in not_images]
    total = 0.0
    results = []
    done = 0
    for path, overlay_path, mask_path in zip(files, overlays, masks):
        try:
            img = read_image(path)
        except (FileNotFoundError, ImageReadError) as err:
            print(f'skipping {path}: {err}', file=sys.stderr, flush=True)
            skipped.append((path, str(err)))
            continue
        if done == 0:
            report_speedup(model, img)
        start = time.perf_counter()
        try:
            result = inference_model(model, path)
        except ValueError as err:  # input-specific (e.g. smaller than a patch)
            print(f'skipping {path}: {err}', file=sys.stderr, flush=True)
            skipped.append((path, str(err)))
            continue
        total += time.perf_counter() - start
        done += 1
        if args.coco_json:
            results.append(above_score(result, args.score_thr))
        rgb = img[..., ::-1].copy()
        drawn = vis.draw_prediction(rgb, result)
        if 'pred_token_stage' in result and not args.no_pruning_view:
            stage_map = result.pred_token_stage.data[0].cpu().numpy()
            drawn = np.concatenate([drawn, vis.draw_token_stages(
                rgb, stage_map, getattr(model, 'stages', None) and
                len(model.stages))], axis=1)
        if is_cam_model(model) and not args.no_cam_view:
            try:
                panel, shown = cam_overlay(
                    model, img, [c for c in args.cam_classes.split(',')
                                 if c])
            except ValueError as err:
                raise SystemExit(f'error: {err}') from None
            cv2.putText(panel, 'CAM: ' + ', '.join(shown), (5, 20),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                        cv2.LINE_AA)
            drawn = np.concatenate([drawn, panel], axis=1)
        cv2.imwrite(overlay_path, drawn[..., ::-1])
        if args.save_mask:
            cv2.imwrite(mask_path, prediction_mask(result))
        if args.show:
            vis.show(drawn, win_name=osp.basename(path), wait_time=0)
    if done == 0:
        raise SystemExit(summarize_skipped(skipped, done) +
                         '\nno image could be processed')
    print(f'{done} images, {1000 * total / done:.1f} ms per '
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
    if skipped:
        raise SystemExit(summarize_skipped(skipped, done))


if __name__ == '__main__':
    main()
