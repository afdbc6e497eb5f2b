"""Accuracy and latency of an mmdet detector with and without the token
stages of its vtseg ViT, in one run (docs/detection.md, "Expedit inside the
detector").

The variants share one model: :func:`set_stages` swaps the backbone's token
stages (``ViT.set_token_stages``), so every variant runs the same weights
and no backbone is copied. Accuracy: the config's ``test_evaluator`` (e.g.
mmdet's ``CocoMetric``, box and mask AP) over its ``test_dataloader``, once
per variant. Latency: full inference (``model.test_step``: network, NMS,
mask pasting) per image on the same preprocessed images, with the variants
interleaved round by round (the order alternating), as
:func:`vtseg.analysis.benchmark_models` does for networks.
"""
import copy
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import (DATASETS, MODELS, DefaultScope,
                               init_default_scope)
from mmengine.runner import Runner

from vtseg.evaluation.discovery_det import to_det_sample
from vtseg.models.utils.checkpoint import load_pretrained_strict
from .benchmark import LatencyStats, num_threads

__all__ = [
    'build_detector', 'set_stages', 'evaluate_detector',
    'detector_batches', 'time_detector_variants', 'compare_det_variants',
    'coco_discovery_samples'
]


def build_detector(cfg: Config, checkpoint: Optional[str] = None
                   ) -> nn.Module:
    """Build ``cfg.model`` in the config's scope (``mmdet`` for the
    detectors) in eval mode; with ``checkpoint`` the whole model is loaded
    strictly (the backbone's pretrained init is skipped), else
    ``init_weights`` runs."""
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    if checkpoint:
        model_cfg.get('backbone', {}).pop('init_cfg', None)
    model = MODELS.build(model_cfg)
    if checkpoint:
        load_pretrained_strict(model, checkpoint)
    else:
        model.init_weights()
    model.cfg = cfg
    return model.eval()


def set_stages(model: nn.Module, stages: Sequence[dict]) -> None:
    """Install ``stages`` (token stage configs; ``[]`` = none) in the
    detector's backbone."""
    backbone = getattr(model, 'backbone', model)
    if not hasattr(backbone, 'set_token_stages'):
        raise ValueError(f'{type(backbone).__name__} has no token stages '
                         '(set_token_stages): not a vtseg ViT')
    backbone.set_token_stages(copy.deepcopy(list(stages)))


def evaluate_detector(model: nn.Module, cfg: Config,
                      split: str = 'test',
                      max_images: Optional[int] = None) -> Dict[str, float]:
    """Run ``cfg.{split}_dataloader`` through the model and return the
    ``{split}_evaluator`` metrics (e.g. ``coco/bbox_mAP``,
    ``coco/segm_mAP``)."""
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    loader = Runner.build_dataloader(copy.deepcopy(
        cfg[f'{split}_dataloader']))
    evaluator = Evaluator(copy.deepcopy(cfg[f'{split}_evaluator']))
    evaluator.dataset_meta = loader.dataset.metainfo
    model.eval()
    n = 0
    with torch.no_grad():
        for data in loader:
            outputs = model.test_step(data)
            evaluator.process(data_samples=outputs, data_batch=data)
            n += len(outputs)
            if max_images is not None and n >= max_images:
                break
    return evaluator.evaluate(n)


def detector_batches(cfg: Config, model: nn.Module, num_images: int,
                     split: str = 'test') -> List[dict]:
    """``num_images`` single-image batches from ``cfg.{split}_dataloader``,
    already through ``model.data_preprocessor`` (so that timing covers the
    network and post-processing only)."""
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    dl = copy.deepcopy(cfg[f'{split}_dataloader'])
    dl['batch_size'] = 1
    loader = Runner.build_dataloader(dl)
    out = []
    for data in loader:
        out.append(model.data_preprocessor(data, False))
        if len(out) >= num_images:
            break
    return out


def time_detector_variants(model: nn.Module,
                           variants: Dict[str, Sequence[dict]],
                           batches: List[dict],
                           rounds: int = 4,
                           warmup: int = 1,
                           threads: Optional[int] = 1,
                           log: Optional[Callable[[str], None]] = None
                           ) -> Dict[str, LatencyStats]:
    """Per-image latency of full inference for each token-stage variant.

    Args:
        model: detector with a vtseg ViT backbone.
        variants: name -> token stage configs (first entry: the baseline,
            usually ``[]``).
        batches: preprocessed single-image batches
            (:func:`detector_batches`).
        rounds: rounds; in each, every variant runs every image once, the
            variant order alternating between rounds.
        warmup: untimed passes over the images per variant.
        threads: CPU threads during the run.

    Returns:
        name -> :class:`LatencyStats` (seconds per image).
    """
    names = list(variants)
    stats = {n: LatencyStats(n, 1) for n in names}
    model.eval()
    with num_threads(threads), torch.no_grad():
        for name in names:
            set_stages(model, variants[name])
            for _ in range(warmup):
                for data in batches:
                    model(**data, mode='predict')
        for r in range(rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                set_stages(model, variants[name])
                times = []
                for data in batches:
                    t0 = time.perf_counter()
                    model(**data, mode='predict')
                    times.append(time.perf_counter() - t0)
                stats[name].times.extend(times)
                stats[name].round_medians.append(statistics.median(times))
            if log:
                log(f'round {r + 1}/{rounds}: ' + ', '.join(
                    f'{n} {stats[n].round_medians[-1] * 1e3:.0f} ms'
                    for n in names))
    set_stages(model, variants[names[0]])
    return stats


def compare_det_variants(cfg: Config, checkpoint: str,
                         variants: Dict[str, Sequence[dict]],
                         num_images: int = 8, rounds: int = 4,
                         threads: Optional[int] = 1,
                         split: str = 'test',
                         log: Optional[Callable[[str], None]] = None
                         ) -> Dict[str, dict]:
    """Metrics and latency of every variant in one run.

    Returns:
        name -> dict(metrics=..., latency=LatencyStats.as_dict(),
        speedup=baseline median / variant median, stages=...).
    """
    model = build_detector(cfg, checkpoint)
    result = {}
    with num_threads(threads):
        for name, stages in variants.items():
            set_stages(model, stages)
            metrics = evaluate_detector(model, cfg, split)
            result[name] = dict(stages=list(stages), metrics=metrics)
            if log:
                log(f'{name}: {metrics}')
    batches = detector_batches(cfg, model, num_images, split)
    stats = time_detector_variants(model, variants, batches, rounds,
                                   threads=threads, log=log)
    base = stats[next(iter(variants))].median
    for name, st in stats.items():
        result[name]['latency'] = st.as_dict()
        result[name]['speedup'] = base / st.median
    return result


def coco_discovery_samples(model: nn.Module, ann_file: str, img_dir: str,
                           image_ids: Optional[Sequence[int]] = None,
                           max_objects: Optional[int] = None,
                           log: Optional[Callable[[str], None]] = None
                           ) -> List:
    """Run a discovery model (e.g. TokenCut, built in vtseg's scope) on the
    images of a COCO instances file read by mmdet's ``CocoDataset``
    (full resolution, no resize) and return class-agnostic
    ``DetDataSample``s (:func:`vtseg.evaluation.to_det_sample`).

    Args:
        model: segmentor whose ``test_step`` fills ``pred_instances``.
        ann_file / img_dir: COCO json and its image folder.
        image_ids: fixed subset (None: every image of the file).
        max_objects: keep at most this many objects per image.
    """
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(dict(
            type='CocoDataset', ann_file=ann_file,
            data_prefix=dict(img=img_dir), test_mode=True,
            filter_cfg=None, pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='PackDetInputs',
                     meta_keys=('img_id', 'img_path', 'ori_shape',
                                'img_shape', 'scale_factor'))
            ]))
    keep = None if image_ids is None else set(int(i) for i in image_ids)
    samples = []
    model.eval()
    with torch.no_grad():
        for idx in range(len(dataset)):
            info = dataset.get_data_info(idx)
            if keep is not None and info['img_id'] not in keep:
                continue
            item = dataset[idx]
            out = model.test_step(dict(inputs=[item['inputs']],
                                       data_samples=[item['data_samples']]))
            samples.append(to_det_sample(out[0], info['img_id'],
                                         max_objects))
            if log and len(samples) % 16 == 0:
                log(f'{len(samples)} images')
    return samples
