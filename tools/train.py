"""Train a vtseg / mmseg model (mmseg's command line).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                          [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse
import logging
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import vtseg  # noqa: E402,F401  (compat layer)
from vtseg.compat.dist import destroy_process_group  # noqa: E402
from vtseg.registry import RUNNERS  # noqa: E402
from vtseg.setup_env import register_all_modules  # noqa: E402
from vtseg.utils.config import (add_common_args, default_work_dir,  # noqa
                                existing_checkpoints, load_config,
                                set_local_rank)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', const='auto', default=None, metavar='CKPT',
        help='resume from CKPT, or (no value) from the latest checkpoint in '
        'the work dir')
    parser.add_argument(
        '--amp', action='store_true',
        help='mixed precision: fp16 AmpOptimWrapper on GPU, bf16 autocast '
        'on CPU')
    parser.add_argument(
        '--force', action='store_true',
        help='train into a work dir that already holds checkpoints (they '
        'may be overwritten)')
    add_common_args(parser)
    args = parser.parse_args(argv)
    set_local_rank(args)
    return args


def main(argv=None):
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    cfg = load_config(args.config, args.cfg_options, args.launcher)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)

    ckpts = existing_checkpoints(cfg.work_dir)
    if ckpts and args.resume is None and not args.force:
        raise SystemExit(
            f'work dir {cfg.work_dir} already holds checkpoints '
            f'({", ".join(ckpts[:3])}{" ..." if len(ckpts) > 3 else ""}); '
            'pass --resume to continue that run, --work-dir to start a new '
            'one elsewhere, or --force to train over it')

    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper in ('AmpOptimWrapper', 'AutocastOptimWrapper'):
            print_log('mixed precision is already enabled in the config',
                      logger='current', level=logging.WARNING)
        elif wrapper != 'OptimWrapper':
            raise SystemExit('--amp needs optim_wrapper.type OptimWrapper, '
                             f'got {wrapper}')
        elif torch.cuda.is_available():
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
        else:
            cfg.optim_wrapper.type = 'AutocastOptimWrapper'
            cfg.optim_wrapper.dtype = 'bfloat16'

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise SystemExit(f'--resume: checkpoint not found: {args.resume}')
        cfg.resume = True
        cfg.load_from = args.resume

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else \
        RUNNERS.build(cfg)
    try:
        runner.train()
    finally:
        destroy_process_group()


if __name__ == '__main__':
    main()
