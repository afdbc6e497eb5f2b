"""Latency and images/s of a baseline config and variant configs, measured
in the same run with interleaved rounds, and the speed-up ratios.

    python tools/analysis_tools/benchmark.py BASE_CONFIG [VARIANT ...]
        [--checkpoint CKPT] [--shape H W | --real-images]
        [--batch-size 1] [--threads 1] [--device cpu]
        [--warmup 50] [--rounds 10] [--iters 20] [--dtype fp16]
        [--stage-fraction] [--cfg-options k=v ...] [--json OUT]
        [--sweep KEY VALUE [VALUE ...]]

All models get the same weights (``--checkpoint``, loaded strictly into each)
and the same input batch: ``--shape`` a random (B, 3, H, W) tensor, or
``--real-images`` B distinct images of the test dataloader, prepared by
each config's own pipeline (so configs at different input resolutions see
the same photos; never one image repeated). Defaults follow
docs/methods/flops_and_speed.md#speed-measurement (batch 1, 50 warm-up
forwards, 200 timed forwards per model: 10 rounds of 20).
``--stage-fraction`` also reports the share of each variant's forward time
spent in its token stages (clustering / reconstruction ...).
``--sweep KEY V1 V2 ...`` builds one model per value of a config key from
BASE_CONFIG (the first value is the baseline), e.g. DToP thresholds:
``--sweep model.thresh 1.0 0.95 0.9``.
"""
import argparse
import ast
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

import vtseg  # noqa: E402,F401  (compat layer)
from vtseg.analysis.benchmark import (benchmark_models, build_model,  # noqa
                                      environment_info, format_benchmark,
                                      num_threads, real_image_batches,
                                      speedups)
from vtseg.analysis.stage_time import stage_time_fraction  # noqa: E402
from vtseg.models.reducers import BaseTokenStage  # noqa: E402

DTYPES = dict(fp16=torch.float16, bf16=torch.bfloat16)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Latency / throughput, baseline '
                                'vs variants in one run')
    p.add_argument('config', help='baseline config')
    p.add_argument('variants', nargs='*', help='variant configs')
    p.add_argument('--checkpoint', help='weights loaded into every model')
    p.add_argument('--shape', type=int, nargs='+', help='random input H W')
    p.add_argument('--real-images', action='store_true',
                   help='a batch of distinct real test images')
    p.add_argument('--data-root', help='override the dataset data_root')
    p.add_argument('--image-index', type=int, default=0,
                   help='first test image used by --real-images')
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument('--threads', type=int, help='torch CPU threads')
    p.add_argument('--device', default='cpu')
    p.add_argument('--warmup', type=int, default=50)
    p.add_argument('--rounds', type=int, default=10)
    p.add_argument('--iters', type=int, default=20,
                   help='timed forwards per model per round')
    p.add_argument('--dtype', choices=sorted(DTYPES),
                   help='autocast dtype (default: fp32)')
    p.add_argument('--stage-fraction', action='store_true',
                   help='time spent in token stages per variant')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='applied to every config')
    p.add_argument('--json', help='write results as json here')
    p.add_argument('--sweep', nargs='+', metavar=('KEY', 'VALUE'),
                   help='one model of BASE_CONFIG per VALUE of config key '
                   'KEY (values are Python literals; the first is the '
                   'baseline)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    builds = [(path, path, args.cfg_options)
              for path in [args.config] + list(args.variants)]
    if args.sweep:
        if len(args.sweep) < 2:
            raise SystemExit('--sweep needs a key and at least one value')
        if args.variants:
            raise SystemExit('give either variant configs or --sweep')
        key, values = args.sweep[0], args.sweep[1:]
        builds = []
        for text in values:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text
            builds.append((f'{key}={text}', args.config,
                           dict(args.cfg_options or {}, **{key: value})))
    names = [b[0] for b in builds]
    if len(set(names)) != len(names):
        raise SystemExit('configs must be distinct')
    models = {}
    for name, path, options in builds:
        models[name] = build_model(path, args.checkpoint, options,
                                   args.device)
    if args.real_images:
        # the same images, prepared by each config's own test pipeline
        inputs = {
            n: real_image_batches(m.cfg, m, args.batch_size,
                                  args.batch_size, args.data_root,
                                  start=args.image_index)[0].to(device)
            for n, m in models.items()
        }
    elif args.shape:
        shape = args.shape * 2 if len(args.shape) == 1 else args.shape
        torch.manual_seed(0)
        x = torch.randn(args.batch_size, 3, *shape).to(device)
        inputs = {n: x for n in models}
    else:
        raise SystemExit('give --shape H W or --real-images')
    shapes = {n: tuple(x.shape) for n, x in inputs.items()}
    print(f'inputs {sorted(set(shapes.values()))}; {args.rounds} rounds x '
          f'{args.iters} iterations per model after {args.warmup} warm-up',
          flush=True)
    stats = benchmark_models(models, inputs, args.warmup, args.rounds,
                             args.iters, args.threads,
                             DTYPES.get(args.dtype), log=print)
    print(format_benchmark(stats, args.threads))
    result = dict(input_shapes={n: list(s) for n, s in shapes.items()},
                  env=environment_info(device),
                  models={n: s.as_dict() for n, s in stats.items()},
                  speedups=speedups(stats))
    result['env']['threads'] = args.threads or result['env']['threads']
    if args.stage_fraction:
        result['stage_fraction'] = {}
        with num_threads(args.threads):
            for name in names[1:]:
                frac = stage_time_fraction(models[name], inputs[name],
                                           [BaseTokenStage])
                result['stage_fraction'][name] = frac
                print(f'token stages of {name}: {frac["stages_ms"]:.1f} of '
                      f'{frac["total_ms"]:.1f} ms '
                      f'({100 * frac["fraction"]:.1f}%)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
