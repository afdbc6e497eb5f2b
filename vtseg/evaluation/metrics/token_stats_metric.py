"""Per-image compute of input-dependent token reduction (DToP, ...)."""
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from vtseg.registry import METRICS

__all__ = ['TokenStatsMetric']


@METRICS.register_module()
class TokenStatsMetric(BaseMetric):
    """Average per-image GFLOPs and token statistics of a model whose cost
    depends on the image.

    Reads the ``token_stats`` metainfo a model's ``predict`` stores in each
    data sample (:class:`~vtseg.models.segmentors.DToPEncoderDecoder`):
    ``flops`` (multiply-adds of that image's forward, all sliding-window
    crops summed), ``active`` (active patch tokens during each stage) and
    ``finalised`` (share of the patches finalised at each stage).

    Keys: ``gflops`` (mean per image), ``gflops_min``, ``gflops_max``,
    ``gflops_std``, ``pruned_s{i}`` (mean share of patches finalised at
    stage i, the last stage excluded: those are never pruned) and
    ``active_s{i}`` (mean active tokens during stage i).
    """
    default_prefix = ''

    def __init__(self, collect_device: str = 'cpu',
                 prefix: Optional[str] = None, **kwargs):
        super().__init__(collect_device=collect_device, prefix=prefix,
                         **kwargs)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            stats = sample.get('token_stats')
            if stats is None:
                raise KeyError(
                    'TokenStatsMetric: the prediction has no token_stats '
                    '(the model does not report its per-image cost; use it '
                    'with DToPEncoderDecoder)')
            self.results.append(stats)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        flops = np.array([r['flops'] for r in results], np.float64) / 1e9
        out = dict(gflops=float(flops.mean()), gflops_min=float(flops.min()),
                   gflops_max=float(flops.max()),
                   gflops_std=float(flops.std()))
        S = len(results[0]['finalised'])
        for s in range(S):
            out[f'active_s{s}'] = float(np.mean(
                [r['active'][s] for r in results]))
            if s < S - 1:
                out[f'pruned_s{s}'] = float(np.mean(
                    [r['finalised'][s] for r in results]))
        print_log('token stats: ' + ', '.join(
            f'{k} {v:.4g}' for k, v in out.items()), logger='current')
        return out
