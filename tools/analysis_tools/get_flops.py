"""FLOPs (multiply-adds) and parameters of a vtseg model.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W]
        [--num-images N] [--checkpoint CKPT] [--reducer-count {executed,spec}]
        [--cfg-options k=v ...] [--json OUT]

Counting: mmengine's fvcore-derived jit counter for the standard layers, plus
the attention products (2 * T^2 * C per layer on live tokens) and the token
stages' own cost from their registered formulas
(docs/methods/flops_and_speed.md, see docs/analysis_tools.md). The count
covers backbone, neck and decode head in ``mode='tensor'`` (no resizing of the
logits to the image).

Input: ``--shape H W`` counts one random (1, 3, H, W) input (static models;
for sliding-window configs the default is the crop size: the count is per
crop). ``--num-images N`` instead counts N real images of the test
dataloader, prepared by its pipeline, and reports mean / min / max / std
(input-dependent models, or images of different sizes).
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

import vtseg  # noqa: E402,F401  (compat layer)
from vtseg.analysis.benchmark import build_model, real_image_batches  # noqa
from vtseg.analysis.flops import (REDUCER_COUNT_MODES, count_flops,  # noqa
                                  summarize_counts)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Count FLOPs of a model')
    p.add_argument('config')
    p.add_argument('--shape', type=int, nargs='+',
                   help='input H W (or one side for a square)')
    p.add_argument('--num-images', type=int, default=0,
                   help='count this many real test images instead')
    p.add_argument('--data-root', help='override the dataset data_root')
    p.add_argument('--checkpoint', help='weights (matter only for '
                   'input-dependent models)')
    p.add_argument('--reducer-count', default='executed',
                   choices=REDUCER_COUNT_MODES,
                   help="token-stage cost: 'executed' (what vtseg "
                   "evaluates) or 'spec' (dense formulas of "
                   "docs/methods/flops_and_speed.md)")
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--json', help='write the result as json here')
    return p.parse_args(argv)


def default_shape(cfg):
    test_cfg = cfg.model.get('test_cfg') or {}
    if test_cfg.get('mode') == 'slide':
        return tuple(test_cfg['crop_size'])
    return None


def main(argv=None):
    args = parse_args(argv)
    torch.set_grad_enabled(False)
    model = build_model(args.config, args.checkpoint, args.cfg_options)
    cfg = model.cfg
    if args.num_images > 0:
        inputs = real_image_batches(cfg, model, args.num_images, 1,
                                    args.data_root)
        source = f'{args.num_images} real test images'
    else:
        shape = args.shape or default_shape(cfg)
        if shape is None:
            raise SystemExit('give --shape H W (no sliding-window crop size '
                             'in the config) or --num-images N')
        if len(shape) == 1:
            shape = (shape[0], shape[0])
        inputs = [torch.randn(1, 3, *shape)]
        source = f'random input {tuple(shape)}'
    counts = [count_flops(model, x, args.reducer_count) for x in inputs]
    first = counts[0]
    result = dict(config=args.config, input=source,
                  input_shapes=sorted({tuple(x.shape[-2:]) for x in inputs}),
                  reducer_count=args.reducer_count,
                  params_M=first.params / 1e6)
    summary = summarize_counts(counts)
    result['gflops'] = {k: (v / 1e9 if k != 'n' else v)
                        for k, v in summary.items()}
    mean = lambda f: sum(f(c) for c in counts) / len(counts)  # noqa: E731
    result['attention_gflops'] = mean(lambda c: c.attention) / 1e9
    result['reducers_gflops'] = {
        k: mean(lambda c, k=k: c.reducers.get(k, 0)) / 1e9
        for k in first.reducers}
    result['by_module_gflops'] = {
        k: mean(lambda c, k=k: c.by_module.get(k, 0)) / 1e9
        for k in first.by_module}
    result['by_operator_gflops'] = {
        k: mean(lambda c, k=k: c.by_operator.get(k, 0)) / 1e9
        for k in first.by_operator}
    line = '=' * 60
    g = result['gflops']
    print(line)
    print(f'config:     {args.config}')
    print(f'input:      {source}; shapes {result["input_shapes"]}')
    if g['n'] > 1:
        print(f'GFLOPs:     mean {g["mean"]:.3f}  min {g["min"]:.3f}  '
              f'max {g["max"]:.3f}  std {g["std"]:.3f}  (n={g["n"]})')
    else:
        print(f'GFLOPs:     {g["mean"]:.3f}')
    print(f'params:     {result["params_M"]:.2f} M')
    print(f'attention:  {result["attention_gflops"]:.3f} GFLOPs '
          '(QK^T + AV)')
    for k, v in result['reducers_gflops'].items():
        print(f'reducer:    {k}: {v:.4f} GFLOPs ({args.reducer_count})')
    for k, v in result['by_module_gflops'].items():
        print(f'module:     {k}: {v:.3f} GFLOPs')
    print('(1 multiply-add = 1 FLOP; elementwise ops not counted)')
    print(line)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
