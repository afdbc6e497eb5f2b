"""Latency / throughput measurement with interleaved baseline and variant
rounds (docs/methods/flops_and_speed.md#speed-measurement).

Protocol: every model gets ``warmup`` untimed forwards, then ``rounds``
rounds; in each round every model runs ``iters_per_round`` timed forwards,
and the order of the models alternates from round to round, so that a slow
period of a shared machine hits all of them alike. Each forward is timed on
its own (``time.perf_counter``, with ``torch.cuda.synchronize`` before and
after on GPU). Reported per model: median and mean latency, the spread
between rounds, and images/s; per variant: the speed-up over the baseline as
the ratio of median latencies, plus the lowest and highest per-round ratio
as a noise band.
"""
import copy
import platform
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmseg.models.segmentors import BaseSegmentor
from torch import Tensor

from vtseg.models.utils.checkpoint import load_pretrained_strict
from vtseg.registry import DATASETS, MODELS
from vtseg.setup_env import register_all_modules
from vtseg.utils.config import check_cfg_options

__all__ = [
    'LatencyStats', 'benchmark_models', 'compare_speed', 'environment_info',
    'format_benchmark', 'num_threads', 'speedups', 'time_function',
    'forward_fn', 'sync', 'build_model', 'real_image_batches',
    'plain_model_like', 'speedup_vs_plain', 'has_token_stages'
]


@dataclass
class LatencyStats:
    """Timings of one model, in seconds per forward."""
    name: str
    batch_size: int
    times: List[float] = field(default_factory=list)
    round_medians: List[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.times) if len(self.times) > 1 else 0.

    @property
    def images_per_s(self) -> float:
        return self.batch_size / self.median

    def as_dict(self) -> dict:
        return dict(name=self.name, batch_size=self.batch_size,
                    median_ms=self.median * 1e3, mean_ms=self.mean * 1e3,
                    std_ms=self.std * 1e3, images_per_s=self.images_per_s,
                    round_medians_ms=[t * 1e3 for t in self.round_medians],
                    n=len(self.times))


@contextmanager
def num_threads(n: Optional[int]):
    """Temporarily set ``torch.set_num_threads`` (None: unchanged)."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def sync(device: torch.device):
    """Wait for the device's queued work (CUDA); no-op on CPU."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def forward_fn(model: nn.Module) -> Callable[[Tensor], object]:
    """``x -> output`` of one network forward on a (B, 3, H, W) batch:
    segmentors run in ``mode='tensor'`` (network only, like Expedit's
    ``forward_dummy``); other modules are called directly."""
    if isinstance(model, BaseSegmentor):
        return lambda x: model(x, mode='tensor')
    return model


def benchmark_models(models: Dict[str, nn.Module],
                     inputs: Union[Tensor, Dict[str, Tensor]],
                     warmup: int = 50,
                     rounds: int = 10,
                     iters_per_round: int = 20,
                     threads: Optional[int] = None,
                     dtype: Optional[torch.dtype] = None,
                     log: Optional[Callable[[str], None]] = None
                     ) -> Dict[str, LatencyStats]:
    """Time several models on the same inputs with interleaved rounds.

    Args:
        models: name -> model (already on the device of ``inputs``, eval
            mode is set here). The first entry is the baseline.
        inputs: (B, 3, H, W) preprocessed batch for every model, or name ->
            batch (e.g. the same images prepared by each model's own
            pipeline, for models at different input resolutions).
        warmup: untimed forwards per model before timing.
        rounds / iters_per_round: rounds x models x iterations timed.
        threads: CPU threads (``torch.set_num_threads``) during the run.
        dtype: run under autocast with this dtype (None: as is).
        log: optional callback for progress lines.

    Returns:
        name -> :class:`LatencyStats`.
    """
    if not isinstance(inputs, dict):
        inputs = {n: inputs for n in models}
    device = next(iter(inputs.values())).device
    stats = {n: LatencyStats(n, inputs[n].shape[0]) for n in models}
    fns = {}
    for name, model in models.items():
        model.eval()
        fns[name] = forward_fn(model)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else None
    names = list(models)
    with num_threads(threads), torch.no_grad():
        if autocast:
            autocast.__enter__()
        try:
            for name in names:
                for _ in range(warmup):
                    fns[name](inputs[name])
                sync(device)
            for r in range(rounds):
                order = names if r % 2 == 0 else names[::-1]
                for name in order:
                    times = []
                    for _ in range(iters_per_round):
                        sync(device)
                        t0 = time.perf_counter()
                        fns[name](inputs[name])
                        sync(device)
                        times.append(time.perf_counter() - t0)
                    stats[name].times.extend(times)
                    stats[name].round_medians.append(
                        statistics.median(times))
                if log:
                    log(f'round {r + 1}/{rounds}: ' + ', '.join(
                        f'{n} {stats[n].round_medians[-1] * 1e3:.1f} ms'
                        for n in names))
        finally:
            if autocast:
                autocast.__exit__(None, None, None)
    return stats


def speedups(stats: Dict[str, LatencyStats]) -> Dict[str, dict]:
    """Per variant: median-latency ratio baseline / variant and the min /
    max of the per-round ratios (the first entry is the baseline)."""
    names = list(stats)
    base = stats[names[0]]
    out = {}
    for name in names[1:]:
        var = stats[name]
        per_round = [b / v for b, v in zip(base.round_medians,
                                           var.round_medians)]
        out[name] = dict(ratio=base.median / var.median,
                         round_min=min(per_round), round_max=max(per_round))
    return out


def environment_info(device: Optional[torch.device] = None) -> dict:
    """What a timing depends on: device, torch version, threads, CPU."""
    device = device or torch.device('cpu')
    info = dict(torch=torch.__version__, device=str(device),
                threads=torch.get_num_threads(),
                cpu=platform.processor() or platform.machine(),
                sdpa='torch.nn.functional.scaled_dot_product_attention')
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def format_benchmark(stats: Dict[str, LatencyStats],
                     threads: Optional[int] = None) -> str:
    """A plain-text table of :func:`benchmark_models` results."""
    sp = speedups(stats)
    lines = [f'{"model":<28} {"median ms":>10} {"mean ms":>9} {"std":>7} '
             f'{"img/s":>8} {"speed-up":>9} {"per-round range":>17}']
    for name, st in stats.items():
        extra = ''
        if name in sp:
            s = sp[name]
            extra = (f'{s["ratio"]:>8.3f}x {s["round_min"]:>7.3f}-'
                     f'{s["round_max"]:.3f}x')
        lines.append(f'{name:<28} {st.median * 1e3:>10.1f} '
                     f'{st.mean * 1e3:>9.1f} {st.std * 1e3:>7.1f} '
                     f'{st.images_per_s:>8.2f} {extra}')
    env = environment_info()
    if threads:
        env['threads'] = threads
    lines.append(f'(batch {next(iter(stats.values())).batch_size}, '
                 f'threads {env["threads"]}, torch {env["torch"]}, '
                 f'{env["cpu"]})')
    return '\n'.join(lines)


def compare_speed(baseline: nn.Module,
                  variant: nn.Module,
                  inputs: Tensor,
                  warmup: int = 3,
                  rounds: int = 4,
                  iters_per_round: int = 3,
                  threads: Optional[int] = None) -> dict:
    """Small interleaved comparison for demos: returns ``dict(baseline_ms,
    variant_ms, speedup, round_min, round_max)`` (median latencies)."""
    stats = benchmark_models({'baseline': baseline, 'variant': variant},
                             inputs, warmup, rounds, iters_per_round,
                             threads)
    s = speedups(stats)['variant']
    return dict(baseline_ms=stats['baseline'].median * 1e3,
                variant_ms=stats['variant'].median * 1e3,
                speedup=s['ratio'], round_min=s['round_min'],
                round_max=s['round_max'])


def time_function(fn: Callable[[], object], repeats: int = 20,
                  warmup: int = 3,
                  device: Optional[torch.device] = None) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls."""
    device = device or torch.device('cpu')
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ------------------------------------------------------ model / data helpers
def build_model(config, checkpoint: Optional[str] = None,
                cfg_options: Optional[dict] = None,
                device: str = 'cpu') -> nn.Module:
    """Build the ``model`` of a config (path or :class:`Config`) in eval
    mode, optionally loading a full-model checkpoint strictly
    (weights-only)."""
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    model_cfg = cfg.model.copy()
    if checkpoint:
        # the checkpoint replaces any pretrained init of the backbone
        model_cfg.get('backbone', {}).pop('init_cfg', None)
        model_cfg.pop('pretrained', None)
    model = MODELS.build(model_cfg)
    if checkpoint:
        load_pretrained_strict(model, checkpoint)
    # without a checkpoint the constructors' random init is kept (FLOPs and
    # timings do not depend on the values; init_weights may need files)
    model.cfg = cfg
    return model.to(device).eval()


def real_image_batches(cfg, model: nn.Module, num_images: int,
                       batch_size: int = 1, data_root: Optional[str] = None,
                       split: str = 'test', start: int = 0) -> List[Tensor]:
    """Preprocessed batches of *distinct* images from the config's
    ``{split}_dataloader`` (its pipeline and ``model.data_preprocessor``:
    normalised, padded within a batch), images ``start`` to
    ``start + num_images - 1``. Returns a list of (B, 3, H, W)."""
    dl = cfg.get(f'{split}_dataloader')
    if not dl:
        raise ValueError(f'config has no {split}_dataloader to take real '
                         'images from')
    ds_cfg = copy.deepcopy(dl['dataset'])
    if data_root is not None:
        ds_cfg['data_root'] = data_root
    dataset = DATASETS.build(ds_cfg)
    if len(dataset) < start + num_images:
        raise ValueError(f'{split} dataset has {len(dataset)} images, '
                         f'{start + num_images} requested')
    batches = []
    for first in range(start, start + num_images, batch_size):
        items = [dataset[i] for i in range(
            first, min(first + batch_size, start + num_images))]
        data = model.data_preprocessor(
            dict(inputs=[it['inputs'] for it in items],
                 data_samples=[it['data_samples'] for it in items]), False)
        batches.append(data['inputs'])
    return batches


def plain_model_like(model: nn.Module, cfg=None) -> nn.Module:
    """The same model without token stages (the baseline of a token
    reduction config): a deep copy, sharing no parameters but holding the
    same weights, whose backbone's stages are removed with
    ``backbone.set_token_stages([])``.

    Args:
        model: a segmentor with a vtseg ViT backbone, or the ViT itself.
        cfg: kept on the copy as ``cfg`` (default: ``model.cfg``, as set by
            :func:`build_model` and :func:`vtseg.apis.init_model`).
    """
    backbone = getattr(model, 'backbone', model)
    if not hasattr(backbone, 'set_token_stages'):
        raise ValueError(f'plain_model_like: {type(backbone).__name__} has '
                         'no token stages to remove (set_token_stages)')
    plain = copy.deepcopy(model)
    getattr(plain, 'backbone', plain).set_token_stages([])
    cfg = cfg if cfg is not None else getattr(model, 'cfg', None)
    if cfg is not None:
        plain.cfg = cfg
    return plain.eval()


def speedup_vs_plain(model: nn.Module, inputs: Tensor, cfg=None,
                     threads: Optional[int] = None, rounds: int = 4,
                     iters_per_round: int = 3, warmup: int = 2) -> dict:
    """Speed-up of a token-reduction model over the same model without its
    token stages, measured here with interleaved rounds (for demos).

    Returns :func:`compare_speed`'s dict; ``speedup`` is plain / reduced
    median latency. A model without token stages gives about 1.
    """
    plain = plain_model_like(model, cfg)
    return compare_speed(plain, model, inputs, warmup, rounds,
                         iters_per_round, threads)


def has_token_stages(model: nn.Module) -> bool:
    """True when the model's backbone runs token stages (a reducer)."""
    backbone = getattr(model, 'backbone', model)
    return len(getattr(backbone, 'token_stages', ())) > 0
