"""Similarity statistics for ALGM's thresholds (docs/token_merging.md,
"Calibrating ALGM").

ALGM's global step (GBM) recomputes its threshold on every forward pass
(``mean + std / layer_idx`` of the best-match scores), while the paper
describes one threshold taken from training statistics. :func:`algm_statistics`
runs a model whose backbone has an :class:`AdaptiveTokenMerging` stage on
images (e.g. training images) and collects, at the stage's own blocks and on
the token sets it really sees:

* at the local block, every 2x2 window's similarity (the share of windows
  that a CLAP threshold would merge);
* at each global block, every set-A token's best-match score.

:func:`calibrated_thresholds` turns them into fixed values for
``gbm_threshold='calibrated'``.
"""
from typing import Dict, Iterable, List

import torch
from torch import Tensor, nn

from vtseg.functional.local_global_merging import window_similarity
from vtseg.functional.token_merging import bipartite_best_match
from vtseg.models.reducers import AdaptiveTokenMerging

__all__ = ['algm_statistics', 'calibrated_thresholds']


def _algm_stage(model: nn.Module) -> AdaptiveTokenMerging:
    backbone = getattr(model, 'backbone', model)
    stages = [s for s in getattr(backbone, 'token_stages', ())
              if isinstance(s, AdaptiveTokenMerging)]
    if len(stages) != 1:
        raise ValueError('algm_statistics needs a backbone with exactly one '
                         f'AdaptiveTokenMerging stage, found {len(stages)}')
    return stages[0]


def algm_statistics(model: nn.Module,
                    batches: Iterable[Tensor]) -> Dict[str, object]:
    """Run ``model`` (tensor mode) on ``batches`` and record ALGM's scores.

    Args:
        model: a segmentor (or ViT) with one ``AdaptiveTokenMerging`` stage.
        batches: preprocessed (B, 3, H, W) inputs.

    Returns:
        dict with ``local`` (1-D tensor of window similarities at the local
        block) and ``global`` ({block: list of 1-D tensors, one per image, of
        the valid set-A tokens' best-match scores}).
    """
    stage = _algm_stage(model)
    local: List[Tensor] = []
    glob: Dict[int, List[Tensor]] = {b: [] for b in stage.global_blocks}

    def record(module, args, kwargs):
        grid = args[0]
        block = kwargs.get('block')
        if block == stage.local_block:
            local.append(window_similarity(grid.patches, grid.hw,
                                           stage.window).flatten())
        elif block in glob:
            n = grid.n_prefix
            best, _ = bipartite_best_match(grid.patches, n, grid.valid)
            va = torch.ones_like(best, dtype=torch.bool) if grid.valid is \
                None else grid.valid[:, n % 2::2]
            for b in range(best.shape[0]):
                glob[block].append(best[b][va[b]])

    handle = stage.register_forward_pre_hook(record, with_kwargs=True)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for x in batches:
                if hasattr(model, 'backbone'):
                    model(x, mode='tensor')
                else:
                    model(x)
    finally:
        handle.remove()
        model.train(was_training)
    return dict(local=torch.cat(local) if local else torch.empty(0),
                global_=glob)


def calibrated_thresholds(stats: Dict[str, object],
                          local_fractions=(0.1, 0.2, 0.3, 0.4, 0.5)
                          ) -> Dict[str, object]:
    """Fixed thresholds from :func:`algm_statistics`.

    Returns:
        dict with, per global block, ``paper`` (mu + sigma of all scores
        pooled, the paper's rule), ``code`` (the mean over images of the
        reference's per-forward ``mean + std / (block + 1)``) and the share
        of tokens each would merge; and ``local_quantiles``: the CLAP
        threshold that merges each of ``local_fractions`` of the windows.
    """
    out = {'global': {}, 'local_quantiles': {}}
    for block, per_image in stats['global_'].items():
        if not per_image:
            continue
        pooled = torch.cat(per_image)
        paper = float(pooled.mean() + pooled.std())
        code = float(torch.stack([s.mean() + s.std() / (block + 1)
                                  for s in per_image]).mean())
        out['global'][block] = dict(
            paper=paper, code=code,
            merged_share_paper=float((pooled >= paper).float().mean()),
            merged_share_code=float((pooled >= code).float().mean()),
            images=len(per_image))
    sims = stats['local']
    if sims.numel():
        for f in local_fractions:
            out['local_quantiles'][f] = float(torch.quantile(sims, 1 - f))
    return out
