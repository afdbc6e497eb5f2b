"""Config handling shared by ``tools/train.py`` and ``tools/test.py``."""
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config, DictAction


class ConfigKeyError(KeyError):
    """A ``--cfg-options`` key that the config does not have."""

    def __str__(self):  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def check_cfg_options(cfg: Config, options: Optional[dict],
                      source: str = '--cfg-options') -> None:
    """Refuse options whose top-level key is not in the config (typos such
    as ``trian_cfg.max_iters``), and options that descend into a non-dict.

    Nested keys that are new (e.g. ``model.backbone.init_cfg``) are allowed:
    builders reject unknown constructor arguments by name.
    """
    if not options:
        return
    for key in options:
        parts = key.split('.')
        if parts[0] not in cfg:
            raise ConfigKeyError(
                f'{source}: config has no key {parts[0]!r} (from {key!r}); '
                f'top-level keys are: {", ".join(sorted(cfg.keys()))}')
        node = cfg[parts[0]]
        for depth, part in enumerate(parts[1:-1], start=1):
            if isinstance(node, (list, tuple)) and part.isdigit():
                if int(part) >= len(node):
                    raise ConfigKeyError(
                        f'{source}: index {part} out of range in '
                        f'{".".join(parts[:depth])!r} (from {key!r})')
                node = node[int(part)]
            elif isinstance(node, dict):
                if part not in node:
                    raise ConfigKeyError(
                        f'{source}: {".".join(parts[:depth])!r} has no key '
                        f'{part!r} (from {key!r}); it has: '
                        f'{", ".join(sorted(map(str, node.keys())))}')
                node = node[part]
            else:
                raise ConfigKeyError(
                    f'{source}: {".".join(parts[:depth])!r} is not a dict '
                    f'(from {key!r})')


def load_config(path: str, cfg_options: Optional[dict] = None,
                launcher: str = 'none') -> Config:
    """Load a config, apply checked ``--cfg-options`` and pick the
    distributed backend (gloo when CUDA is absent)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    check_cfg_options(cfg, cfg_options)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if not torch.cuda.is_available():
        env = cfg.setdefault('env_cfg', {})
        env.setdefault('dist_cfg', {})
        env['dist_cfg']['backend'] = 'gloo'
        if launcher != 'none':
            # DDP over CPU modules takes no device_ids.
            wrapper = cfg.get('model_wrapper_cfg') or dict(
                type='MMDistributedDataParallel', broadcast_buffers=False,
                find_unused_parameters=cfg.get('find_unused_parameters',
                                               False))
            wrapper['device_ids'] = None
            cfg.model_wrapper_cfg = wrapper
    return cfg


def add_common_args(parser) -> None:
    """``--cfg-options``, ``--launcher`` and ``--local_rank`` (mmseg tools)."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, xxx=yyy (top-level keys must exist)')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def set_local_rank(args) -> None:
    """torch.distributed.launch passes --local-rank; torchrun sets the env."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)


def default_work_dir(config_path: str) -> str:
    return osp.join('./work_dirs',
                    osp.splitext(osp.basename(config_path))[0])


def existing_checkpoints(work_dir: str):
    if not osp.isdir(work_dir):
        return []
    return sorted(f for f in os.listdir(work_dir) if f.endswith('.pth'))
