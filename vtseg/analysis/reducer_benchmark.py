"""One accuracy / GFLOPs / latency comparison of every way to make a dense
ViT cheaper (docs/reducer_benchmark.md).

A *setting* is one variant of a model config: a token reducer (ToMe, ALGM,
Expedit, DToP pruning, or none) and / or a plain change of the input
resolution. For every setting :func:`run_reducer_benchmark` measures, on the
same images:

* accuracy: the config's ``test_evaluator`` on the first ``num_images`` test
  images, each prepared by the setting's own pipeline;
* GFLOPs per image (:func:`vtseg.analysis.count_flops`, the reducers' own
  cost included), the mean over the first ``flops_images`` images;
* latency and images/s at batch 1 and batch 8, all settings timed in one
  interleaved run (:func:`vtseg.analysis.benchmark_models`), so ratios are
  comparable.

Settings are plain dicts (JSON on the command line)::

    {"name": "plain 336", "scale": 336}
    {"name": "ToMe r16", "reducer": "tome", "r": 16}
    {"reducer": "algm", "local_block": 1, "global_blocks": [5],
     "local_thresh": 0.88, "scale": 392}
    {"reducer": "expedit", "cluster_layer": 3, "grid": 0.6}
    {"reducer": "dtop", "thresh": 0.9}
    {"reducer": "stages", "stages": [{...token stage cfg...}, ...]}

``scale`` is the longest image side the test pipeline resizes to (a
multiple of the patch size); ``cfg_options`` (a dict) is merged into the
config last. The first setting is the baseline of the speed-up column.
"""
import copy
import csv
import json
import numbers
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.config import Config
from tqdm import tqdm

from vtseg.models.reducers import expedit_token_stages
from vtseg.registry import DATASETS, METRICS
from .benchmark import benchmark_models, build_model
from .flops import count_flops

__all__ = ['REDUCERS', 'ReducerSetting', 'parse_settings',
           'setting_config', 'check_setting', 'run_reducer_benchmark',
           'write_table', 'plot_results', 'above_curve',
           'iou_by_object_size', 'SIZE_BINS']

#: reducer names a setting may use
REDUCERS = ('none', 'config', 'tome', 'algm', 'expedit', 'dtop', 'stages')
_COMMON_KEYS = ('name', 'reducer', 'scale', 'cfg_options')


@dataclass
class ReducerSetting:
    """One variant of the model config.

    Attributes:
        name: label in the table and plot.
        reducer: one of :data:`REDUCERS`: ``'none'`` (no token stages),
            ``'config'`` (the config as is), ``'tome'`` / ``'algm'`` /
            ``'expedit'`` (the reducer's arguments in ``kwargs``),
            ``'dtop'`` (``thresh``: the DToP segmentor's pruning
            threshold), ``'stages'`` (``stages``: token stage configs).
        scale: longest input side after resizing (None: the config's).
        kwargs: the reducer's arguments.
        cfg_options: merged into the config last.
    """
    name: str
    reducer: str = 'none'
    scale: Optional[int] = None
    kwargs: dict = field(default_factory=dict)
    cfg_options: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The setting as given (for the results and for reuse)."""
        return dict(name=self.name, reducer=self.reducer, scale=self.scale,
                    cfg_options=self.cfg_options, **self.kwargs)

    @property
    def is_resolution_only(self) -> bool:
        """A plain model at some resolution (a point of the resolution
        curve)."""
        return self.reducer == 'none' and not self.cfg_options


def parse_settings(items: Sequence[dict]) -> List[ReducerSetting]:
    """Dicts (see the module docstring) -> settings; unknown reducers and
    missing arguments raise a ``ValueError`` naming the setting."""
    if not items:
        raise ValueError('no settings given')
    settings = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f'setting {i} is not a dict: {item!r}')
        reducer = item.get('reducer', 'none')
        if reducer not in REDUCERS:
            raise ValueError(f'setting {i}: unknown reducer {reducer!r}; '
                             f'choose one of {REDUCERS}')
        kwargs = {k: v for k, v in item.items() if k not in _COMMON_KEYS}
        if reducer in ('none', 'config') and kwargs:
            raise ValueError(f'setting {i}: reducer {reducer!r} takes no '
                             f'arguments, got {sorted(kwargs)}')
        need = dict(tome=['r'], algm=['local_block'],
                    expedit=['cluster_layer', 'grid'], dtop=['thresh'],
                    stages=['stages']).get(reducer, [])
        missing = [k for k in need if k not in kwargs]
        if missing:
            raise ValueError(f'setting {i} ({reducer}): missing {missing}')
        scale = item.get('scale')
        if scale is not None and (not isinstance(scale, int) or scale <= 0):
            raise ValueError(f'setting {i}: scale must be a positive int, '
                             f'got {scale!r}')
        name = item.get('name') or _default_name(reducer, kwargs, scale)
        settings.append(ReducerSetting(name, reducer, scale, kwargs,
                                       dict(item.get('cfg_options') or {})))
    names = [s.name for s in settings]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f'setting names must be distinct: {dup}')
    return settings


def _default_name(reducer, kwargs, scale) -> str:
    parts = ['plain' if reducer == 'none' else reducer]
    parts += [f'{k}={v}' for k, v in kwargs.items() if k != 'stages']
    if scale:
        parts.append(f'@{scale}')
    return ' '.join(parts)


def _is_dtop(cfg) -> bool:
    return cfg.model.get('type') == 'DToPEncoderDecoder'


def _resized_pipeline(pipeline, scale: int, where: str) -> list:
    pipe = [dict(t) for t in pipeline if t['type'] != 'Resize']
    at = next((i for i, t in enumerate(pipe)
               if t['type'] == 'LoadImageFromFile'), None)
    if at is None:
        raise ValueError(f'{where}: no LoadImageFromFile in the pipeline '
                         'to put the Resize after')
    pipe.insert(at + 1, dict(type='Resize', scale=(scale, scale),
                             keep_ratio=True))
    return pipe


def _set_scale(cfg, scale: int, patch: int) -> None:
    """Resize the test images to ``scale`` (longest side), before the
    labels are loaded (they stay at the original size), and let the data
    preprocessor pad to a patch multiple instead of a fixed size."""
    for key in ('test_dataloader', 'val_dataloader'):
        dl = cfg.get(key)
        if not dl:
            continue
        ds = dl['dataset']
        # a ConcatDataset: every part has its own pipeline
        for part in ds.get('datasets', [ds]):
            part['pipeline'] = _resized_pipeline(part['pipeline'], scale,
                                                 key)
    dp = cfg.model.get('data_preprocessor')
    if dp is not None and dp.get('size') is not None:
        dp['size'] = None
        dp['size_divisor'] = patch


def setting_config(cfg: Config, setting: ReducerSetting) -> Config:
    """The config of one setting (a copy; ``cfg`` is not changed)."""
    cfg = copy.deepcopy(cfg)
    bb = cfg.model.backbone
    depth = bb.get('depth', 12)
    patch = bb.get('patch_size', 16)
    r, kw = setting.reducer, dict(setting.kwargs)
    if r == 'tome':
        blocks = kw.pop('blocks', list(range(depth)))
        stages = [dict(type='TokenMerging', after_block=blocks, **kw)]
    elif r == 'algm':
        stages = [dict(type='AdaptiveTokenMerging', **kw)]
    elif r == 'expedit':
        stages = expedit_token_stages(**kw)
    elif r == 'stages':
        stages = list(kw['stages'])
    elif r == 'config':
        stages = None
    else:
        stages = []
    if stages is not None:
        bb['token_stages'] = stages
    if _is_dtop(cfg):
        if r == 'dtop':
            cfg.model['thresh'] = kw['thresh']
            cfg.model['impl'] = kw.get('impl', 'pack')
        elif r != 'config':
            # the same weights without pruning (merging stages are undone
            # before the final head)
            cfg.model['thresh'] = 1.0
            cfg.model['impl'] = 'none'
    elif r == 'dtop':
        raise ValueError(f'setting {setting.name!r}: reducer dtop needs a '
                         'DToPEncoderDecoder config')
    if setting.scale is not None:
        _set_scale(cfg, setting.scale, patch)
    if setting.cfg_options:
        cfg.merge_from_dict(setting.cfg_options)
    return cfg


def check_setting(setting: ReducerSetting, cfg: Config,
                  image_hw: Sequence[int]) -> None:
    """Refuse settings that would not mean what they say: a resolution that
    is not a multiple of the patch size, a ToMe schedule that merges more
    tokens than a block has to give (ToMe would silently clip it).

    Args:
        image_hw: (H, W) of a prepared input image of this setting.
    """
    bb = cfg.model.backbone
    patch = bb.get('patch_size', 16)
    if setting.scale is not None and setting.scale % patch:
        raise ValueError(f'setting {setting.name!r}: scale {setting.scale} is '
                         f'not a multiple of the patch size {patch}')
    if setting.reducer != 'tome':
        return
    n = math.ceil(image_hw[0] / patch) * math.ceil(image_hw[1] / patch)
    blocks = setting.kwargs.get('blocks', list(range(bb.get('depth', 12))))
    r = setting.kwargs['r']
    rs = list(r) if isinstance(r, (list, tuple)) else [r] * len(blocks)
    left = n
    for b, rb in zip(blocks, rs):
        if rb > left // 2:
            raise ValueError(
                f'setting {setting.name!r}: r={rb} at block {b} is larger '
                f'than the {left // 2} tokens it can merge ({left} patch '
                f'tokens left of {n} at input {tuple(image_hw)})')
        left -= rb


def _dataset(cfg, data_root: Optional[str]):
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    if data_root:
        ds_cfg['data_root'] = data_root
    return DATASETS.build(ds_cfg)


def _prepare(model, items) -> dict:
    return model.data_preprocessor(
        dict(inputs=[it['inputs'] for it in items],
             data_samples=[copy.deepcopy(it['data_samples'])
                           for it in items]), False)


def _batch(model, items) -> torch.Tensor:
    """(B, 3, H, W) of distinct images prepared one by one (the test-mode
    preprocessor refuses mixed sizes), zero-padded to the largest."""
    xs = [_prepare(model, [it])['inputs'] for it in items]
    h = max(x.shape[-2] for x in xs)
    w = max(x.shape[-1] for x in xs)
    return torch.cat([F.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))
                      for x in xs])


def _evaluate(model, cfg, dataset, start, num, bar):
    """The config's test evaluator (one metric or a list) on images
    ``start`` .. ``start + num - 1``: (merged metrics dict, the first
    metric's keys first; per-image scalars of the first metric that keeps
    per-image dicts)."""
    cfgs = cfg.test_evaluator
    cfgs = list(cfgs) if isinstance(cfgs, (list, tuple)) else [cfgs]
    metrics = [METRICS.build(copy.deepcopy(c)) for c in cfgs]
    for m in metrics:
        m.dataset_meta = dataset.metainfo   # as mmengine's Evaluator does
    with torch.no_grad():
        for i in range(start, start + num):
            data = _prepare(model, [dataset[i]])
            out = model.predict(data['inputs'], data['data_samples'])
            samples = [o.to_dict() for o in out]
            for m in metrics:
                m.process({}, samples)
            bar.update(1)
    scores, per_image = {}, []
    for m in metrics:
        res = m.compute_metrics(m.results)
        scores.update({k: float(v) for k, v in res.items()
                       if isinstance(v, numbers.Real)})
        # per-image scalars (e.g. the saliency metric's tp / fp / fn), for
        # breakdowns such as by object size
        if not per_image:
            per_image = [{k: v for k, v in r.items()
                          if isinstance(v, (int, float))}
                         for r in m.results if isinstance(r, dict)]
    return scores, per_image


def run_reducer_benchmark(config: str,
                          checkpoint: Optional[str],
                          settings: Sequence[ReducerSetting],
                          num_images: int = 0,
                          start: int = 0,
                          flops_images: int = 4,
                          batch_sizes: Sequence[int] = (1, 8),
                          threads: Optional[int] = 1,
                          warmup: int = 2,
                          rounds: int = 4,
                          iters: int = 2,
                          data_root: Optional[str] = None,
                          skip_latency: bool = False,
                          reuse: Optional[Sequence[dict]] = None,
                          log: Callable[[str], None] = print) -> List[dict]:
    """Measure every setting (see the module docstring).

    Args:
        config / checkpoint: the model.
        settings: from :func:`parse_settings`; the first is the baseline.
        num_images: test images scored (0: all from ``start`` on).
        start: index of the first test image used (scoring, FLOPs and the
            latency batches start there), e.g. to leave out a tuning part.
        flops_images: images whose FLOPs are counted (mean reported).
        batch_sizes: batch sizes of the latency run (distinct real images,
            the first ones of the test set).
        threads: CPU threads of the latency run (None: as set).
        warmup / rounds / iters: of :func:`benchmark_models`.
        data_root: override the test dataset's ``data_root``.
        skip_latency: accuracy and FLOPs only.
        reuse: ``results`` of an earlier run: settings with the same name,
            arguments, images and FLOPs images take its accuracy and GFLOPs
            instead of measuring them again.

    Returns:
        One dict per setting: ``name``, ``reducer``, ``scale``,
        ``metrics`` (the evaluator's dict), ``per_image`` (the scalar
        per-image statistics the metric keeps, if any), ``gflops``, and per
        batch size
        ``b{n}_ms`` (median latency per batch), ``b{n}_img_s`` and
        ``b{n}_speedup`` (baseline latency / this one).
    """
    base_cfg = Config.fromfile(config)
    cfgs, models, datasets = {}, {}, {}
    for s in settings:
        cfg = setting_config(base_cfg, s)
        model = build_model(cfg, checkpoint)
        ds = _dataset(cfg, data_root)
        first = _prepare(model, [ds[min(start, len(ds) - 1)]])['inputs']
        check_setting(s, cfg, first.shape[-2:])
        cfgs[s.name], models[s.name], datasets[s.name] = cfg, model, ds
    total = len(next(iter(datasets.values())))
    if not 0 <= start < total:
        raise ValueError(f'start={start} is outside the {total} test images')
    n = total - start
    num = n if num_images <= 0 else min(num_images, n)
    # scores and counts of an earlier run of the same settings on the same
    # images are taken over (e.g. accuracy first, latency on a quiet machine)
    earlier = {}
    for r in reuse or ():
        earlier[(r['name'], json.dumps(r.get('setting'), sort_keys=True),
                 r['num_images'], r.get('first_image', 0),
                 r.get('flops_images'))] = r
    results, todo = [], []
    for s in settings:
        key = (s.name, json.dumps(s.as_dict(), sort_keys=True), num, start,
               flops_images)
        if key in earlier:
            old = earlier[key]
            results.append({k: old[k] for k in (
                'name', 'reducer', 'scale', 'resolution_only', 'num_images',
                'first_image', 'metrics', 'per_image', 'gflops', 'setting',
                'flops_images')})
            log(f'{s.name}: accuracy and GFLOPs taken from the earlier run')
        else:
            results.append(dict(name=s.name, reducer=s.reducer,
                                scale=s.scale,
                                resolution_only=s.is_resolution_only,
                                num_images=num, first_image=start,
                                flops_images=flops_images,
                                setting=s.as_dict()))
            todo.append((s, results[-1]))
    bar = tqdm(total=len(todo) * num, desc='accuracy', unit='img')
    for s, res in todo:
        res['metrics'], res['per_image'] = _evaluate(
            models[s.name], cfgs[s.name], datasets[s.name], start, num, bar)
    bar.close()
    bar = tqdm(total=len(todo) * flops_images, desc='GFLOPs', unit='img')
    for s, res in todo:
        counts = []
        for i in range(min(flops_images, n)):
            x = _prepare(models[s.name],
                         [datasets[s.name][start + i]])['inputs']
            counts.append(count_flops(models[s.name], x).total)
            bar.update(1)
        res['gflops'] = sum(counts) / len(counts) / 1e9
    bar.close()
    if skip_latency:
        return results
    for bs in batch_sizes:
        inputs = {s.name: _batch(models[s.name], [
            datasets[s.name][start + i] for i in range(min(bs, n))])
            for s in settings}
        log(f'latency at batch {bs}: {rounds} interleaved rounds x '
            f'{iters} iterations x {len(settings)} settings')
        stats = benchmark_models(models, inputs, warmup=warmup,
                                 rounds=rounds, iters_per_round=iters,
                                 threads=threads)
        base = stats[settings[0].name].median
        for s, res in zip(settings, results):
            st = stats[s.name]
            res[f'b{bs}_ms'] = st.median * 1e3
            res[f'b{bs}_img_s'] = st.images_per_s
            res[f'b{bs}_speedup'] = base / st.median
    return results


def write_table(results: Sequence[dict], metric_keys: Sequence[str],
                md_path: Optional[str] = None,
                csv_path: Optional[str] = None) -> str:
    """Markdown table (returned, and written to ``md_path``) and CSV of the
    results."""
    lat = sorted({k for r in results for k in r
                  if k.startswith('b') and k.endswith('_ms')},
                 key=lambda k: int(k[1:-3]))
    cols = ['setting', 'scale'] + list(metric_keys) + ['GFLOPs']
    for k in lat:
        b = k[1:-3]
        cols += [f'b{b} ms', f'b{b} img/s', f'b{b} speed-up']
    rows = []
    for r in results:
        row = [r['name'], r['scale'] or 'config']
        row += [r['metrics'].get(k, float('nan')) for k in metric_keys]
        row.append(r['gflops'])
        for k in lat:
            b = k[1:-3]
            row += [r[k], r[f'b{b}_img_s'], r[f'b{b}_speedup']]
        rows.append(row)

    def fmt(v):
        return f'{v:.4f}' if isinstance(v, float) else str(v)
    lines = ['| ' + ' | '.join(cols) + ' |',
             '|' + '---|' * len(cols)]
    lines += ['| ' + ' | '.join(fmt(v) for v in row) + ' |' for row in rows]
    md = '\n'.join(lines) + '\n'
    if md_path:
        with open(md_path, 'w') as f:
            f.write(md)
    if csv_path:
        with open(csv_path, 'w', newline='') as f:
            w = csv.writer(f)
            w.writerow(cols)
            w.writerows(rows)
    return md


def plot_results(results: Sequence[dict], metric_key: str, path: str,
                 title: str = '') -> None:
    """Accuracy against GFLOPs and against batch-1 latency (PNG): plain
    resolutions joined as the resolution curve, other settings as labelled
    points."""
    import matplotlib  # noqa: E402  (plot only; a backend for files)
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    xs = [('gflops', 'GFLOPs per image')]
    if any('b1_ms' in r for r in results):
        xs.append(('b1_ms', 'latency, batch 1 (ms)'))
    fig, axes = plt.subplots(1, len(xs), figsize=(6 * len(xs), 4.5))
    axes = [axes] if len(xs) == 1 else list(axes)
    for ax, (key, label) in zip(axes, xs):
        curve = sorted((r for r in results if r['resolution_only']),
                       key=lambda r: r[key])
        if curve:
            ax.plot([r[key] for r in curve],
                    [r['metrics'][metric_key] for r in curve], 'o-',
                    color='0.4', label='plain model, input resolution')
            front = _envelope([(r[key], r['metrics'][metric_key])
                               for r in curve])
            # flat after its most accurate point, to the costliest setting
            right = max(r[key] for r in results if key in r)
            if right > front[-1][0]:
                front.append((right, front[-1][1]))
            ax.plot([x for x, _ in front], [y for _, y in front], '--',
                    color='0.7', label='its upper envelope (the curve to '
                    'beat)')
            for r in curve:
                ax.annotate(r['name'],
                            (r[key], r['metrics'][metric_key]),
                            textcoords='offset points', xytext=(3, -10),
                            fontsize=7, color='0.4')
        for r in results:
            if r['resolution_only']:
                continue
            ax.plot(r[key], r['metrics'][metric_key], 's')
            ax.annotate(r['name'], (r[key], r['metrics'][metric_key]),
                        textcoords='offset points', xytext=(4, 3),
                        fontsize=7)
        ax.set_xlabel(label)
        ax.set_ylabel(metric_key)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc='best')
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _envelope(points):
    """The points (cost, accuracy) that no cheaper point beats, by
    cost."""
    front = []
    for x, y in sorted(points):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def above_curve(results: Sequence[dict], metric_key: str,
                x_key: str = 'b1_ms') -> Dict[str, float]:
    """Accuracy of each non-resolution setting minus the plain model's
    resolution curve at the same cost; positive = above the curve.

    The curve is the upper envelope of the plain points (a resolution that
    is both costlier and less accurate than another is never the one to
    beat): linear between the points on the envelope, flat after its most
    accurate point. Settings cheaper than every plain point are left out.
    """
    front = _envelope([(r[x_key], r['metrics'][metric_key])
                       for r in results
                       if r['resolution_only'] and x_key in r])
    out = {}
    for r in results:
        if r['resolution_only'] or x_key not in r or not front:
            continue
        x = r[x_key]
        if x < front[0][0]:
            continue
        y = front[-1][1]
        for (x0, y0), (x1, y1) in zip(front, front[1:]):
            if x0 <= x <= x1:
                y = y0 + (y1 - y0) * (x - x0) / max(x1 - x0, 1e-12)
                break
        out[r['name']] = r['metrics'][metric_key] - y
    return out


#: object-size bins of :func:`iou_by_object_size`: foreground share of the
#: image (ground truth)
SIZE_BINS = ((0.0, 0.05, 'small (< 5%)'), (0.05, 0.2, 'medium (5-20%)'),
             (0.2, 1.01, 'large (>= 20%)'))


def iou_by_object_size(results: Sequence[dict]) -> Dict[str, Dict[str, dict]]:
    """Mean per-image foreground IoU of every setting in bins of the true
    object's share of the image (saliency-style metrics whose per-image
    statistics hold ``tp``, ``fp``, ``fn``, ``num_pixels``).

    Returns:
        {setting: {bin label: dict(n=images, iou=mean IoU)}}; empty when the
        metric keeps no such statistics.
    """
    out = {}
    for r in results:
        stats = r.get('per_image') or []
        if not stats or not all(k in stats[0] for k in
                                ('tp', 'fp', 'fn', 'num_pixels')):
            return {}
        bins = {}
        for lo, hi, label in SIZE_BINS:
            ious = []
            for st in stats:
                share = (st['tp'] + st['fn']) / st['num_pixels']
                if lo <= share < hi:
                    union = st['tp'] + st['fp'] + st['fn']
                    ious.append(st['tp'] / union if union else 1.0)
            bins[label] = dict(n=len(ious), iou=sum(ious) / len(ious)
                               if ious else float('nan'))
        out[r['name']] = bins
    return out
