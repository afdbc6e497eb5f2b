"""Evaluate a vtseg / mmseg model (mmseg's command line) and report speed.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
                         [--show-dir DIR] [--partial-load]
                         [--cfg-options k=v ...] [--launcher pytorch]

The checkpoint must fit the model (strict loading, docs/reliability.md).
"""
import argparse
import inspect
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.dist import get_rank  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import vtseg  # noqa: E402,F401  (compat layer)
from vtseg.compat.dist import destroy_process_group  # noqa: E402
from vtseg.models.utils.checkpoint import CheckpointMismatchError  # noqa
from vtseg.registry import METRICS, RUNNERS  # noqa: E402
from vtseg.setup_env import register_all_modules  # noqa: E402
from vtseg.utils.config import (add_common_args,  # noqa: E402
                                add_strict_load_hook, default_work_dir,
                                load_config, set_local_rank)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and time) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='dir for logs and metrics json')
    parser.add_argument(
        '--out', help='dir to write the predictions as images (the metric '
        'must support output_dir); refused if it exists and is not empty')
    parser.add_argument('--show', action='store_true',
                        help='show results in a window')
    parser.add_argument('--show-dir',
                        help='dir to write painted predictions; refused if '
                        'it exists and is not empty')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds between shown images')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (config tta_pipeline)')
    parser.add_argument(
        '--partial-load', action='store_true',
        help='load the tensors of CHECKPOINT whose names and shapes fit and '
        'log the others (default: strict, a checkpoint that does not fit '
        'the config is an error)')
    add_common_args(parser)
    args = parser.parse_args(argv)
    set_local_rank(args)
    return args


def trigger_visualization_hook(cfg, args):
    """Switch on drawing; configs without a visualization hook (e.g. the
    evaluation-only saliency configs, which have no ``default_hooks``) get
    mmseg's ``SegVisualizationHook``."""
    if args.show_dir and osp.isdir(args.show_dir) and os.listdir(
            args.show_dir):
        # the hook names pictures by image and index: an earlier run's
        # pictures would be replaced without a word
        raise SystemExit(f'--show-dir {args.show_dir} exists and is not '
                         'empty; choose another folder')
    if cfg.get('default_hooks') is None:
        cfg.default_hooks = {}
    hooks = cfg.default_hooks
    if hooks.get('visualization') is None:
        hooks['visualization'] = dict(type='SegVisualizationHook')
    vis = hooks['visualization']
    vis['draw'] = True
    if args.show:
        vis['show'] = True
        vis['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir
        vis['interval'] = vis.get('interval', 1)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    register_all_modules(init_default_scope=False)
    cfg = load_config(args.config, args.cfg_options, args.launcher)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)
    cfg.load_from = args.checkpoint
    add_strict_load_hook(cfg, partial=args.partial_load)
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        if 'tta_pipeline' not in cfg or 'tta_model' not in cfg:
            raise SystemExit('--tta needs tta_pipeline and tta_model in the '
                             'config')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        if osp.isdir(args.out) and os.listdir(args.out):
            raise SystemExit(f'--out {args.out} exists and is not empty; '
                             'choose another folder')
        evaluator = cfg.test_evaluator
        for ev in (evaluator if isinstance(evaluator, list) else [evaluator]):
            params = inspect.signature(METRICS.get(ev['type'])).parameters
            if 'output_dir' not in params:
                raise SystemExit(f'--out: metric {ev["type"]} cannot write '
                                 'predictions (no output_dir argument)')
            ev['output_dir'] = args.out
            if 'keep_results' in params:  # mmseg IoUMetric
                ev['keep_results'] = True

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else \
        RUNNERS.build(cfg)
    n_images = len(runner.test_dataloader.dataset)
    start = time.perf_counter()
    try:
        try:
            metrics = runner.test()
        except CheckpointMismatchError as err:
            raise SystemExit(f'error: {err}') from None
        elapsed = time.perf_counter() - start
        if get_rank() == 0:
            bs = runner.test_dataloader.batch_size
            print(f'speed: {n_images} images in {elapsed:.1f} s '
                  f'({n_images / max(elapsed, 1e-9):.2f} images/s incl. '
                  f'data loading and metrics; batch {bs}, '
                  f'{torch.get_num_threads()} threads, '
                  f'{"cuda" if torch.cuda.is_available() else "cpu"})',
                  flush=True)
    finally:
        destroy_process_group()
    return metrics


if __name__ == '__main__':
    main()
