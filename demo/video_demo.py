"""Run any vtseg model on a video (or a folder of frames) and write an
annotated mp4.

    python demo/video_demo.py VIDEO CONFIG CHECKPOINT [--out OUT.mp4]
        [--device cpu] [--max-frames N] [--frame-stride K] [--show]
        [--force]

Instances (ConnNet, TokenCut multi-object) keep their colours across frames
(IoU matching). Clip models (TokenCut video) segment up to ``max_frames``
frames jointly. For a model with token stages (e.g. an Expedit config) the
speed-up over the same model without them is measured on the first frame
and printed. ``--coco-json FILE`` writes the instances of every processed
frame (scores >= ``--score-thr``; frames named ``frame_<index>``) as one COCO
dataset; mmdet detector configs (configs/vitdet, docs/detection.md) draw
boxes, instance masks, class names and scores.
"""
import argparse
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import cv2  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from tqdm import tqdm  # noqa: E402

import vtseg  # noqa: E402,F401
from vtseg.apis import inference_video, is_clip_model  # noqa: E402
from vtseg.apis.io import (FrameSource, check_not_inputs,  # noqa: E402
                           check_outputs_free, init_demo_model,
                           report_speedup)
from vtseg.utils.coco_export import (data_samples_to_coco,  # noqa: E402
                                     dump_coco_json)
from vtseg.visualization import (InstanceColorTracker,  # noqa: E402
                                 VTSegVisualizer)


def frame_record(result, index: int, thr: float):
    """The result to export for frame ``index``: instances scoring below
    ``thr`` left out, ``img_path`` = ``frame_<index>``."""
    out = result.clone()
    inst = out.get('pred_instances')
    if inst is not None and thr > 0 and 'scores' in inst:
        out.pred_instances = inst[inst.scores >= thr]
    out.set_metainfo(dict(img_path=f'frame_{index:06d}'))
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='vtseg video demo')
    p.add_argument('video', help='video file or folder of frames')
    p.add_argument('config', help='model config')
    p.add_argument('checkpoint', nargs='?', default=None,
                   help='checkpoint (omit to use the config\'s init_cfg; '
                   'refused if that leaves weights random)')
    p.add_argument('--out', default='outputs/video_demo.mp4',
                   help='annotated output video (.mp4)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--max-frames', type=int, default=None)
    p.add_argument('--frame-stride', type=int, default=1,
                   help='process every K-th frame')
    p.add_argument('--score-thr', type=float, default=0.0,
                   help='hide instances scoring below this (overlay and '
                   '--coco-json; e.g. 0.3 for detectors)')
    p.add_argument('--coco-json', metavar='FILE',
                   help='write the predicted instances of every frame as '
                   'COCO JSON')
    p.add_argument('--opacity', type=float, default=0.5)
    p.add_argument('--show', action='store_true',
                   help='show frames in a window (off by default)')
    p.add_argument('--force', action='store_true',
                   help='overwrite an existing output (never the input)')
    p.add_argument('--partial-load', action='store_true',
                   help='load only the checkpoint tensors that fit the '
                   'model (default: strict)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.frame_stride < 1:
        raise SystemExit('--frame-stride must be >= 1')
    source = FrameSource(args.video)
    inputs = list(source.files) if source.files else [args.video]
    # the partial file too: it is renamed over --out at the end
    try:
        extra = [args.coco_json] if args.coco_json else []
        check_not_inputs([args.out, args.out + '.part.mp4'] + extra, inputs)
        check_outputs_free([args.out] + extra, args.force, inputs=inputs)
    except FileExistsError as err:
        raise SystemExit(f'error: {err}') from None
    try:
        model = init_demo_model(args.config, args.checkpoint, args.device,
                                args.cfg_options, args.partial_load)
    except ValueError as err:
        raise SystemExit(f'error: {err}') from None
    vis = VTSegVisualizer(alpha=args.opacity, score_thr=args.score_thr)
    vis.dataset_meta = model.dataset_meta
    tracker = InstanceColorTracker()
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    n_total = source.num_frames
    if args.max_frames:
        n_total = min(n_total, args.max_frames * args.frame_stride)
    # Clip models (TokenCut video) segment chunks of frames jointly; the
    # others run frame by frame.
    chunk = max(1, int(getattr(model, 'max_frames', 1))) \
        if is_clip_model(model) else 1
    state = dict(writer=None, done=0)
    exported = []
    model_time = 0.0
    tmp = args.out + '.part.mp4'

    def selected_frames():
        for i, frame in source:
            if i % args.frame_stride:
                continue
            if args.max_frames and state['done'] + len(buffer) >= \
                    args.max_frames:
                return
            yield frame

    def emit(frames, results, bar):
        for frame, result in zip(frames, results):
            result = tracker.update(result)
            if args.coco_json and 'pred_instances' in result:
                exported.append(frame_record(
                    result, state['done'] * args.frame_stride,
                    args.score_thr))
            drawn = vis.draw_prediction(frame[..., ::-1].copy(), result)
            drawn = drawn[..., ::-1]
            if state['writer'] is None:
                h, w = drawn.shape[:2]
                state['writer'] = cv2.VideoWriter(
                    tmp, cv2.VideoWriter_fourcc(*'mp4v'),
                    source.fps / args.frame_stride, (w, h))
                if not state['writer'].isOpened():
                    raise SystemExit(f'cannot open {args.out} for writing')
            state['writer'].write(drawn)
            if args.show:
                cv2.imshow('vtseg', drawn)
                cv2.waitKey(1)
            state['done'] += 1
            bar.update(1)

    buffer = []
    try:
        bar = tqdm(total=max(n_total // args.frame_stride, 1), unit='frame',
                   desc=osp.basename(args.video))
        for frame in selected_frames():
            if state['done'] == 0 and not buffer and chunk == 1:
                report_speedup(model, frame)
            buffer.append(frame)
            if len(buffer) < chunk:
                continue
            start = time.perf_counter()
            results = inference_video(model, buffer)
            model_time += time.perf_counter() - start
            emit(buffer, results, bar)
            buffer = []
        if buffer:
            start = time.perf_counter()
            results = inference_video(model, buffer)
            model_time += time.perf_counter() - start
            emit(buffer, results, bar)
        bar.close()
    finally:
        source.close()
        if state['writer'] is not None:
            state['writer'].release()
    done = state['done']
    skipped = list(source.skipped)
    if done == 0:
        raise SystemExit(f'no frames read from {args.video}' + ''.join(
            f'\n  skipped {f}: {why}' for f, why in skipped))
    os.replace(tmp, args.out)
    print(f'{done} frames, {1000 * model_time / done:.1f} ms per frame '
          f'(model only, {args.device}); wrote {osp.abspath(args.out)}')
    if args.coco_json:
        if not exported:
            raise SystemExit('--coco-json: this model predicts no instances')
        coco = data_samples_to_coco(exported,
                                    model.dataset_meta.get('classes'))
        dump_coco_json(coco, args.coco_json)
        print(f'{len(coco["annotations"])} objects in {len(exported)} '
              f'frames written to {args.coco_json}')
    announced = -(-n_total // args.frame_stride)  # ceil
    if not source.files and done < announced:
        # OpenCV cannot say which frame of a damaged stream failed
        print(f'warning: {args.video} announces {source.num_frames} frames '
              f'({announced} selected) but only {done} were decoded: the '
              'stream ends early or is damaged', file=sys.stderr)
    if skipped:
        raise SystemExit(
            f'skipped {len(skipped)} frame file(s) of {args.video}:\n' +
            '\n'.join(f'  {f}: {why}' for f, why in skipped))


if __name__ == '__main__':
    main()
