"""Train a vtseg / mmseg model (mmseg's command line).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                          [--partial-load] [--allow-unknown-keys]
                          [--cfg-options k=v ...] [--launcher pytorch]

Checkpoints are saved atomically and ``load_from`` / ``--resume`` are
loaded strictly (docs/reliability.md).
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
from vtseg.models.utils.checkpoint import CheckpointMismatchError  # noqa
from vtseg.registry import RUNNERS  # noqa: E402
from vtseg.setup_env import register_all_modules  # noqa: E402
from vtseg.utils.config import (ConfigKeyError, add_common_args,  # noqa
                                add_strict_load_hook, default_work_dir,
                                existing_checkpoints, find_resume_checkpoint,
                                load_config, set_local_rank,
                                use_atomic_checkpoints, vtseg_type_names)


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
    parser.add_argument(
        '--partial-load', action='store_true',
        help='load_from: load the tensors whose names and shapes fit and '
        'log the others (e.g. a backbone-only checkpoint into a segmentor); '
        'default: strict, a checkpoint that does not fit is an error')
    parser.add_argument(
        '--allow-unknown-keys', action='store_true',
        help='train although the config has top-level keys that nothing '
        'reads (reported as a warning instead of an error)')
    add_common_args(parser)
    args = parser.parse_args(argv)
    set_local_rank(args)
    return args


def main(argv=None):
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    try:
        cfg = load_config(args.config, args.cfg_options, args.launcher,
                          unknown_keys='warn' if args.allow_unknown_keys
                          else 'error')
    except ConfigKeyError as err:
        raise SystemExit(f'error: {err}') from None
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

    if args.resume == 'auto' or (args.resume is None and cfg.get('resume')
                                 and not cfg.get('load_from')):
        # Resolved here rather than by mmengine, which starts from scratch
        # without a word when the work dir holds no checkpoint.
        what = '--resume' if args.resume else 'resume=True (config)'
        ckpt, notes = find_resume_checkpoint(cfg.work_dir)
        for note in notes:
            print_log(f'{what}: {note}', logger='current',
                      level=logging.WARNING)
        if ckpt is None:
            raise SystemExit(
                f'{what}: no checkpoint to resume from in work dir '
                f'{cfg.work_dir} (looked for last_checkpoint and '
                'iter_N.pth / epoch_N.pth); drop --resume (and resume=True) '
                'to start a new run, or pass --resume CKPT')
        print_log(f'{what}: resuming from {ckpt}', logger='current')
        cfg.resume = True
        cfg.load_from = ckpt
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise SystemExit(f'--resume: checkpoint not found: {args.resume}')
        cfg.resume = True
        cfg.load_from = args.resume
    elif cfg.get('load_from') and '://' not in cfg.load_from and \
            not osp.isfile(cfg.load_from):
        raise SystemExit(f'load_from: checkpoint not found: {cfg.load_from}')

    add_strict_load_hook(cfg, partial=args.partial_load)
    hook = use_atomic_checkpoints(cfg)
    if hook is not None and hook not in vtseg_type_names(
            'AtomicCheckpointHook'):
        print_log(f'default_hooks.checkpoint is a {hook}: checkpoints are '
                  'saved by that hook, not atomically by '
                  'AtomicCheckpointHook', logger='current',
                  level=logging.WARNING)

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else \
        RUNNERS.build(cfg)
    try:
        runner.train()
    except CheckpointMismatchError as err:
        raise SystemExit(f'error: {err}') from None
    finally:
        destroy_process_group()


if __name__ == '__main__':
    main()
