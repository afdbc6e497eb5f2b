"""Config handling shared by ``tools/train.py``, ``tools/test.py`` and
:func:`vtseg.apis.init_model`: checked ``--cfg-options``, unknown top-level
keys, the strict-loading and atomic-checkpoint hooks, and the checkpoint that
``--resume`` continues from (docs/reliability.md)."""
import ast
import difflib
import logging
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional, Set, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

#: Top-level config keys that something reads: mmengine's Runner (and its
#: ``from_cfg``), the tools (``launcher``, ``tta_*``), mmengine's Config
#: (``custom_imports``). A key outside this set that no line of the config
#: files uses has no effect (see :func:`find_unknown_top_level_keys`).
KNOWN_TOP_LEVEL_KEYS = frozenset([
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name',
    'runner_type', 'model_wrapper_cfg', 'find_unused_parameters', 'compile',
    'activation_checkpointing', 'efficient_conv_bn_eval', 'sync_bn',
    'strategy', 'custom_imports', 'tta_model', 'tta_pipeline', 'gpu_ids',
    'train_pipeline', 'test_pipeline', 'val_pipeline'
])


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


def _config_chain(path: str, seen: Set[str]) -> List[Tuple[str, ast.AST]]:
    """The parsed file ``path`` and its local ``_base_`` files, recursively
    (package bases such as ``'mmseg::...'`` are not followed)."""
    path = osp.abspath(path)
    if path in seen or not osp.isfile(path) or not path.endswith('.py'):
        return []
    seen.add(path)
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), filename=path)
    out = [(path, tree)]
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_'
                for t in node.targets):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                continue
            for base in [bases] if isinstance(bases, str) else bases:
                if isinstance(base, str) and '::' not in base:
                    out += _config_chain(
                        osp.join(osp.dirname(path), base), seen)
    return out


def find_unknown_top_level_keys(cfg: Config) -> List[Tuple[str, str]]:
    """Top-level keys that have no effect: assigned in the config file or
    one of its local ``_base_`` files, read by nothing that vtseg knows
    (:data:`KNOWN_TOP_LEVEL_KEYS`) and used by no line of those files (as a
    variable, ``_base_.key`` or ``{{_base_.key}}``). Typical causes: a typo
    (``trian_cfg``, ``modle``) or a key of an older config format
    (``optimizer``, ``lr_config`` in mmseg 0.x).

    Returns:
        ``[(key, nearest known key or '')]`` in file order.
    """
    filename = getattr(cfg, 'filename', None)
    if not filename:
        return []
    assigned: List[str] = []
    used: Set[str] = set()
    for path, tree in _config_chain(filename, set()):
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            assigned += [t.id for t in targets if isinstance(t, ast.Name)]
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                used.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(
                    node.value, ast.Name) and node.value.id == '_base_':
                used.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(
                    node.value, str):
                used.update(re.findall(r'\{\{\s*_base_\.(\w+)', node.value))
    out, done = [], set()
    for key in assigned:
        if key in done or key not in cfg or key.startswith('_') or \
                key in KNOWN_TOP_LEVEL_KEYS or key in used:
            continue
        done.add(key)
        near = difflib.get_close_matches(key, sorted(KNOWN_TOP_LEVEL_KEYS),
                                         n=1, cutoff=0.6)
        out.append((key, near[0] if near else ''))
    return out


def check_top_level_keys(cfg: Config, mode: str = 'warn',
                         source: str = '') -> List[Tuple[str, str]]:
    """Report :func:`find_unknown_top_level_keys`: a warning per key
    (``mode='warn'``), a :class:`ConfigKeyError` naming all of them
    (``'error'``), nothing (``'ignore'``).

    Returns:
        the unknown keys with their nearest known key.
    """
    if mode not in ('warn', 'error', 'ignore'):
        raise ValueError(f"mode must be 'warn', 'error' or 'ignore', got "
                         f'{mode!r}')
    unknown = [] if mode == 'ignore' else find_unknown_top_level_keys(cfg)
    if not unknown:
        return unknown
    where = source or getattr(cfg, 'filename', 'config')
    lines = [
        f'{key!r}' + (f' (did you mean {near!r}?)' if near else
                      ' (no similar known key)') for key, near in unknown
    ]
    msg = (f'{where}: unknown top-level key(s) {", ".join(lines)}: nothing '
           'reads them and no line of the config uses them, so they have no '
           'effect')
    if mode == 'error':
        raise ConfigKeyError(
            msg + '. Fix the name (or delete the key); tools/train.py '
            '--allow-unknown-keys trains anyway')
    print_log(msg, logger='current', level=logging.WARNING)
    return unknown


def load_config(path: str, cfg_options: Optional[dict] = None,
                launcher: str = 'none', unknown_keys: str = 'warn') -> Config:
    """Load a config, report unknown top-level keys
    (:func:`check_top_level_keys` with ``unknown_keys``), apply checked
    ``--cfg-options`` and pick the distributed backend (gloo when CUDA is
    absent)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    check_top_level_keys(cfg, unknown_keys)
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


def vtseg_type(cfg: Config, name: str, module: str = 'vtseg.engine') -> str:
    """The ``type`` under which a config reaches vtseg component ``name``.

    With ``default_scope='vtseg'`` (and no scope) the plain name; under
    another scope (the mmdet detector configs, ``default_scope='mmdet'``,
    whose registries do not see vtseg's, docs/detection.md) the full import
    path ``f'{module}.{name}'``, which mmengine resolves by importing it.
    """
    scope = cfg.get('default_scope')
    return name if scope in (None, 'vtseg') else f'{module}.{name}'


def vtseg_type_names(name: str, module: str = 'vtseg.engine') -> tuple:
    """Every spelling of vtseg component ``name`` in a config's ``type``
    (plain, ``vtseg.`` prefix, full import path)."""
    return (name, f'vtseg.{name}', f'{module}.{name}')


def add_strict_load_hook(cfg: Config, partial: bool = False) -> None:
    """Make the Runner check checkpoints strictly before loading them
    (:class:`vtseg.engine.StrictLoadHook` in ``custom_hooks``). A hook the
    config already lists is kept (``partial=True`` switches it to partial
    loading)."""
    hooks = list(cfg.get('custom_hooks') or [])
    mine = [h for h in hooks if isinstance(h, dict) and h.get('type') in
            vtseg_type_names('StrictLoadHook')]
    if not mine:
        mine = [dict(type=vtseg_type(cfg, 'StrictLoadHook'))]
        hooks.append(mine[0])
    if partial:
        mine[0]['partial'] = True
    cfg.custom_hooks = hooks


def use_atomic_checkpoints(cfg: Config) -> Optional[str]:
    """Save checkpoints with :class:`vtseg.engine.AtomicCheckpointHook`: a
    plain mmengine ``CheckpointHook`` in ``default_hooks.checkpoint`` gets
    this type (same arguments); without one, the Runner's default
    (``CheckpointHook(interval=1)``) becomes atomic. ``checkpoint=None``
    (saving disabled) and other hook types are left alone.

    Returns:
        the checkpoint hook type now in the config (None: disabled).
    """
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = hooks = {}
    if 'checkpoint' not in hooks:
        hooks['checkpoint'] = dict(
            type=vtseg_type(cfg, 'AtomicCheckpointHook'), interval=1)
    ckpt = hooks['checkpoint']
    if not isinstance(ckpt, dict):
        return None if ckpt is None else type(ckpt).__name__
    if ckpt.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        ckpt['type'] = vtseg_type(cfg, 'AtomicCheckpointHook')
    return ckpt.get('type')


_CKPT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole checkpoint file: torch's zip format has
    its directory at the end of the file, so a file cut short by a kill
    is not a valid zip; legacy (non-zip) files are accepted if not empty."""
    if not osp.isfile(path) or osp.getsize(path) == 0:
        return False
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                return bool(z.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    with open(path, 'rb') as f:
        return f.read(1) == b'\x80'  # pickle protocol marker (legacy)


def find_resume_checkpoint(work_dir: str) -> Tuple[Optional[str],
                                                   List[str]]:
    """The checkpoint that ``--resume`` continues from: the newest complete
    one among the file ``last_checkpoint`` names and the ``iter_N.pth`` /
    ``epoch_N.pth`` files of ``work_dir`` (highest N wins; an incomplete
    file is skipped).

    Returns:
        ``(path or None, notes)``: notes say which candidates were skipped
        and why, for the log.
    """
    notes: List[str] = []
    candidates: List[Tuple[int, int, str]] = []  # (step, pointer?, path)
    pointer_file = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer_file):
        with open(pointer_file) as f:
            target = f.read().strip()
        if target and not osp.isfile(target) and osp.isfile(
                osp.join(work_dir, osp.basename(target))):
            target = osp.join(work_dir, osp.basename(target))  # moved dir
        if target and osp.isfile(target):
            m = _CKPT_NAME.match(osp.basename(target))
            candidates.append((int(m.group(1)) if m else -1, 1, target))
        elif target:
            notes.append(f'{pointer_file} names {target}, which does not '
                         'exist')
    if osp.isdir(work_dir):
        for f in os.listdir(work_dir):
            m = _CKPT_NAME.match(f)
            if m:
                candidates.append((int(m.group(1)), 0, osp.join(work_dir, f)))
    seen: Set[str] = set()
    for step, _, path in sorted(candidates, reverse=True):
        if osp.abspath(path) in seen:
            continue
        seen.add(osp.abspath(path))
        if is_complete_checkpoint(path):
            return path, notes
        notes.append(f'{path} is incomplete (cut short), skipped')
    return None, notes
