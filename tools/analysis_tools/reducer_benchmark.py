"""Accuracy, GFLOPs and latency of token reducers and input resolutions on
one model, in one run (docs/reducer_benchmark.md).

    python tools/analysis_tools/reducer_benchmark.py CONFIG CHECKPOINT \
        --settings SETTINGS.json|'[{...}, ...]' --out-dir DIR \
        [--num-images N] [--start 0] [--flops-images 4] [--batch-sizes 1 8] \
        [--threads 1] [--rounds 4] [--iters 2] [--metric IoU] \
        [--no-latency] [--reuse EARLIER/results.json] [--force]

Each setting is a dict: ``reducer`` (none, config, tome, algm, expedit,
dtop, stages) with its arguments, ``scale`` (longest input side, a multiple
of the patch), ``name``, ``cfg_options``; see
:mod:`vtseg.analysis.reducer_benchmark`. The first setting is the
baseline. Writes ``results.md``, ``results.csv``, ``results.json`` and
``results.png`` (accuracy against GFLOPs and against batch-1 latency, the
plain resolutions joined as a curve) into ``--out-dir``; an existing
results file is not overwritten without ``--force``.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

import vtseg  # noqa: E402,F401  (compat layer)
from vtseg.analysis.reducer_benchmark import (above_curve,  # noqa: E402
                                              iou_by_object_size,
                                              parse_settings, plot_results,
                                              run_reducer_benchmark,
                                              write_table)
from vtseg.setup_env import register_all_modules  # noqa: E402

OUTPUTS = ('results.md', 'results.csv', 'results.json', 'results.png')


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Compare token reducers and input resolutions')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--settings', required=True,
                   help='JSON list of settings, or a .json file holding it')
    p.add_argument('--out-dir', required=True)
    p.add_argument('--num-images', type=int, default=0,
                   help='test images scored (0: all)')
    p.add_argument('--start', type=int, default=0,
                   help='first test image used (e.g. skip a tuning part)')
    p.add_argument('--flops-images', type=int, default=4)
    p.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 8])
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--rounds', type=int, default=4)
    p.add_argument('--iters', type=int, default=2)
    p.add_argument('--no-latency', action='store_true',
                   help='accuracy and GFLOPs only')
    p.add_argument('--metric', help='accuracy key for the plot, higher is '
                   'better (default: mIoU or iou where reported)')
    p.add_argument('--data-root', help='override the dataset data_root')
    p.add_argument('--reuse', help='results.json of an earlier run: its '
                   'accuracy and GFLOPs of identical settings are taken over '
                   '(e.g. score first, time later on a quiet machine)')
    p.add_argument('--title', default='')
    p.add_argument('--force', action='store_true',
                   help='overwrite results in --out-dir')
    return p.parse_args(argv)


def load_settings(text: str):
    if osp.isfile(text):
        with open(text) as f:
            return json.load(f)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SystemExit(f'--settings is neither a file nor JSON: {e}')


def main(argv=None):
    args = parse_args(argv)
    try:
        settings = parse_settings(load_settings(args.settings))
    except ValueError as e:
        raise SystemExit(f'reducer_benchmark: {e}')
    existing = [f for f in OUTPUTS if osp.exists(osp.join(args.out_dir, f))]
    if existing and not args.force:
        raise SystemExit(f'reducer_benchmark: {args.out_dir} already holds '
                         f'{existing}; pass --force to overwrite')
    os.makedirs(args.out_dir, exist_ok=True)
    register_all_modules(init_default_scope=True)
    reuse = None
    if args.reuse:
        with open(args.reuse) as f:
            reuse = json.load(f)['results']
    try:
        results = run_reducer_benchmark(
            args.config, args.checkpoint, settings,
            num_images=args.num_images, start=args.start,
            flops_images=args.flops_images,
            batch_sizes=() if args.no_latency else args.batch_sizes,
            threads=args.threads, warmup=args.warmup, rounds=args.rounds,
            iters=args.iters, data_root=args.data_root,
            skip_latency=args.no_latency, reuse=reuse)
    except ValueError as e:
        raise SystemExit(f'reducer_benchmark: {e}')
    keys = list(results[0]['metrics'])
    # the table shows the accuracy metric (the evaluator's first) only;
    # further metrics (e.g. DToP's token statistics) stay in results.json
    table_keys = [k for k in keys if k in ('mIoU', 'mAcc', 'aAcc')] or keys
    # default: an accuracy where higher is better (mIoU, IoU), else the first
    metric = args.metric or next(
        (k for k in ('mIoU', 'iou', 'IoU', 'aAcc') if k in keys), keys[0])
    if metric not in keys:
        raise SystemExit(f'--metric {metric!r} is not one of {keys}')
    md = write_table(results, table_keys, osp.join(args.out_dir, 'results.md'),
                     osp.join(args.out_dir, 'results.csv'))
    gap = above_curve(results, metric) if not args.no_latency else {}
    gap_flops = above_curve(results, metric, 'gflops')
    gap_b8 = above_curve(results, metric, 'b8_ms') \
        if not args.no_latency and 8 in args.batch_sizes else {}
    by_size = iou_by_object_size(results)
    if by_size:
        labels = list(next(iter(by_size.values())))
        base = by_size[results[0]['name']]
        md += ('\nPer-image IoU by object size (share of the image), change '
               f'against {results[0]["name"]}:\n\n| setting | ' +
               ' | '.join(f'{lb} (n={base[lb]["n"]})' for lb in labels) +
               ' |\n|' + '---|' * (len(labels) + 1) + '\n')
        def cell(b, ref):
            if not b['n']:
                return '–'
            return f'{b["iou"]:.4f} ({b["iou"] - ref["iou"]:+.4f})'
        for name, bins in by_size.items():
            md += f'| {name} | ' + ' | '.join(
                cell(bins[lb], base[lb]) for lb in labels) + ' |\n'
        with open(osp.join(args.out_dir, 'results.md'), 'w') as f:
            f.write(md)
    with open(osp.join(args.out_dir, 'results.json'), 'w') as f:
        json.dump(dict(config=args.config, checkpoint=args.checkpoint,
                       threads=args.threads, results=results,
                       above_resolution_curve_b1=gap,
                       above_resolution_curve_gflops=gap_flops,
                       above_resolution_curve_b8=gap_b8,
                       iou_by_object_size=by_size), f, indent=2)
    plot_results(results, metric, osp.join(args.out_dir, 'results.png'),
                 args.title)
    print(md)
    for name, d in gap_flops.items():
        line = (f'{name}: {metric} {d:+.4f} against the resolution curve at '
                'equal GFLOPs')
        if name in gap:
            line += f', {gap[name]:+.4f} at equal batch-1 latency'
        if name in gap_b8:
            line += f', {gap_b8[name]:+.4f} at equal batch-8 latency'
        print(line)
    return results


if __name__ == '__main__':
    main()
