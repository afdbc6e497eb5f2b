"""Estimate ALGM's thresholds from images (docs/token_merging.md,
"Calibrating ALGM").

    python tools/analysis_tools/algm_calibrate.py CONFIG CHECKPOINT \
        [--split train] [--num-images 60] [--start 0] [--json OUT] \
        [--cfg-options ...]

CONFIG's backbone must hold one ``AdaptiveTokenMerging`` stage (its blocks
and window are used). Prints, per global block, the paper's fixed threshold
(mean + std of all best-match scores) and the reference's per-forward rule
averaged over the images, with the share of tokens each merges, and the CLAP
thresholds that would merge 10-50% of the windows; paste one into the config
as ``gbm_threshold='calibrated', global_thresh=[...]``.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

from mmengine.config import DictAction  # noqa: E402

import vtseg  # noqa: E402,F401  (compat layer)
from vtseg.analysis.algm_calibration import (algm_statistics,  # noqa: E402
                                             calibrated_thresholds)
from vtseg.analysis.benchmark import build_model, real_image_batches  # noqa


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Calibrate ALGM thresholds')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--split', default='train',
                   choices=['train', 'val', 'test'],
                   help='dataloader whose images are used (its dataset '
                   'and the test pipeline of the config)')
    p.add_argument('--num-images', type=int, default=60)
    p.add_argument('--start', type=int, default=0)
    p.add_argument('--data-root', help='override the dataset data_root')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--json', help='write the thresholds here')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    model = build_model(args.config, args.checkpoint, args.cfg_options)
    cfg = model.cfg
    if args.split == 'train':
        # training images, prepared as at test time (no augmentation)
        cfg.train_dataloader.dataset['pipeline'] = \
            cfg.test_dataloader.dataset['pipeline']
    try:
        batches = real_image_batches(cfg, model, args.num_images, 1,
                                     args.data_root, split=args.split,
                                     start=args.start)
        stats = algm_statistics(model, batches)
    except ValueError as e:
        raise SystemExit(f'algm_calibrate: {e}')
    res = calibrated_thresholds(stats)
    print(f'{len(batches)} {args.split} images, {args.config}')
    for block, r in res['global'].items():
        print(f'GBM block {block}: paper (mean + std) {r["paper"]:.4f} '
              f'merges {r["merged_share_paper"]:.1%} of A tokens; '
              f'per-forward rule (mean + std / {block + 1}) '
              f'{r["code"]:.4f} merges {r["merged_share_code"]:.1%}')
    for f, t in res['local_quantiles'].items():
        print(f'CLAP threshold {t:.4f} merges {f:.0%} of the windows')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(config=args.config, split=args.split,
                           num_images=len(batches), **res), f, indent=2)
    return res


if __name__ == '__main__':
    main()
