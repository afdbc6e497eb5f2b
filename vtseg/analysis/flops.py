"""FLOP counting for vtseg models (docs/methods/flops_and_speed.md).

One multiply-add counts as one FLOP (the mmcv / fvcore convention of the
Expedit and ALGM tables). The standard layers are counted by mmengine's
fvcore-derived jit counter (:class:`mmengine.analysis.FlopAnalyzer`); this
module adds what that counter misses:

* **attention products**: ``aten::scaled_dot_product_attention`` (which the
  vtseg ViT uses, and which mmengine has no handle for) counts
  Tq * Tk * (d_qk + d_v) per head and image, i.e. 2 * T^2 * C per layer on
  the tokens that are live in that layer;
* **token stages** (reducers): every
  :class:`~vtseg.models.reducers.BaseTokenStage` has a method
  ``flops(call, args, output, mode)``; where it returns a number for a
  ``'forward'`` or ``'restore'`` call (an output restorer's ``restore``,
  which the backbone makes outside ``__call__``), the traced cost of that
  call is replaced by the number, evaluated on the shapes of an eager
  forward. ``None`` (no formula) keeps the traced ops. Gathers and scatters
  count 0;
* **fused multi-head attention** (``aten::_native_multi_head_attention``,
  the path ``torch.nn.MultiheadAttention`` takes in eval mode without
  gradients, e.g. in DToP's ATM heads): input and output projections plus
  the attention products, as the unfused ops would count;
* **weighted embedding bags** (``aten::embedding_bag`` with
  ``per_sample_weights``, e.g. an Expedit reconstruction that a decode head
  applies, ``restore='head'``): one multiply-add per index and channel.

Counts are per forward of the given batch (divide by the batch size for
per-image numbers).
"""
from collections import Counter, OrderedDict, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from mmseg.models.segmentors import BaseSegmentor
from torch import Tensor

from vtseg.models.reducers import BaseTokenStage

__all__ = [
    'sdpa_flop_jit', 'native_mha_flop_jit', 'embedding_bag_flop_jit', 'count_flops', 'FlopCount',
    'summarize_counts', 'TensorModeWrapper', 'REDUCER_COUNT_MODES'
]

#: ``'executed'``: what the vtseg implementation evaluates (e.g. only the
#: token-cluster pairs inside Expedit's locality window); ``'spec'``: the
#: dense formulas of docs/methods/flops_and_speed.md#what-is-counted.
REDUCER_COUNT_MODES = ('executed', 'spec')

_SDPA_OPS = ('aten::scaled_dot_product_attention',
             'aten::_scaled_dot_product_attention_math',
             'aten::_scaled_dot_product_flash_attention',
             'aten::_scaled_dot_product_flash_attention_for_cpu',
             'aten::_scaled_dot_product_efficient_attention',
             'aten::_scaled_dot_product_cudnn_attention')


def _shape(val) -> Optional[List[int]]:
    return get_shape(val)


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """jit handle for scaled-dot-product attention: Q K^T and A V.

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) ->
    prod(...) * Tq * Tk * (d + dv); softmax and scaling are not counted
    (elementwise, as fvcore does for other layers).
    """
    q, k, v = (_shape(x) for x in inputs[:3])
    if q is None or k is None or v is None:
        return 0
    batch = 1
    for s in q[:-2]:
        batch *= s
    return int(batch * q[-2] * k[-2] * (q[-1] + v[-1]))


def native_mha_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """jit handle for ``aten::_native_multi_head_attention`` (query (B, L,
    E), key (B, S, E), value (B, S, E), ...): q / k / v projections
    (L + 2S) * E^2, attention products 2 * L * S * E and the output
    projection L * E^2, per image."""
    q, k = _shape(inputs[0]), _shape(inputs[1])
    if q is None or k is None:
        return 0
    E = q[-1]
    L, S = q[-2], k[-2]
    batch = 1
    for s in q[:-2]:
        batch *= s
    return int(batch * ((L + 2 * S) * E * E + 2 * L * S * E + L * E * E))


def embedding_bag_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """jit handle for ``embedding_bag``: weight (V, D), indices (...) ->
    numel(indices) * D when ``per_sample_weights`` is given (a sparse
    weighted sum), else 0 (a gather plus additions, counted as fvcore counts
    other gathers)."""
    weight, indices = _shape(inputs[0]), _shape(inputs[1])
    per_sample = inputs[6] if len(inputs) > 6 else None
    if weight is None or indices is None or per_sample is None or \
            _shape(per_sample) is None:
        return 0
    n = 1
    for s in indices:
        n *= s
    return int(n * weight[-1])


class TensorModeWrapper(nn.Module):
    """``forward(inputs)`` of a segmentor in ``mode='tensor'`` (backbone,
    neck and decode head, no post-processing), or of any module."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor):
        if isinstance(self.model, BaseSegmentor):
            return self.model(inputs, mode='tensor')
        return self.model(inputs)


class _RestoreCall(nn.Module):
    """Routes ``stage.restore(...)`` through ``__call__`` so that the jit
    scope and forward hooks see it."""

    def __init__(self, stage: nn.Module):
        super().__init__()
        self._stage_ref = [stage]  # not a child: no recursion in modules()

    def forward(self, *args):
        stage = self._stage_ref[0]
        return type(stage).restore(stage, *args)


@contextmanager
def _routed_restores(model: nn.Module):
    """Temporarily route ``restore`` of every token stage through a
    :class:`_RestoreCall` child named ``_flops_restore``."""
    patched = []
    for mod in list(model.modules()):
        if isinstance(mod, BaseTokenStage):
            wrapper = _RestoreCall(mod)
            mod.add_module('_flops_restore', wrapper)
            # instance __dict__ entry shadows the class method (plain
            # setattr would register a submodule instead)
            object.__setattr__(mod, 'restore', wrapper)
            patched.append(mod)
    try:
        yield
    finally:
        for mod in patched:
            del mod._modules['_flops_restore']
            del mod.__dict__['restore']


@dataclass
class FlopCount:
    """Result of :func:`count_flops` (multiply-adds per forward).

    Attributes:
        total: all counted FLOPs.
        attention: the attention-product part (inside ``total``).
        reducers: stage module name -> FLOPs from its ``flops`` method
            (inside ``total``); stages whose method returned None for
            every call are not listed (their traced ops are counted).
        by_module: top-level module name -> FLOPs (reducer formulas
            included in their owners); ops that ran outside any child's
            ``__call__`` (e.g. a head's own matmuls when the segmentor calls
            ``decode_head.forward`` directly) are listed under
            ``'(outside sub-module calls)'``.
        by_operator: operator -> FLOPs, traced ops plus ``'reducers'``.
        params: number of parameters.
        unsupported: operators the counter saw but does not count, with
            their number of calls (elementwise ops, sparse kernels of
            reducers replaced by formulas ...).
    """
    total: int
    attention: int
    reducers: Dict[str, int]
    by_module: Dict[str, int]
    by_operator: Dict[str, int]
    params: int
    unsupported: Dict[str, int] = field(default_factory=dict)


def _restore_scope(name: str) -> str:
    return f'{name}._flops_restore' if name else '_flops_restore'


def count_flops(model: nn.Module,
                inputs: Tensor,
                reducer_count: str = 'executed') -> FlopCount:
    """Count the FLOPs of one forward of ``model`` on ``inputs``.

    Args:
        model: a segmentor (counted in ``mode='tensor'``: backbone, neck and
            decode head, no resizing of the logits) or any module taking
            one tensor.
        inputs: (B, 3, H, W) preprocessed images.
        reducer_count: ``'executed'`` or ``'spec'``, passed to the stages'
            ``flops`` methods (see :data:`REDUCER_COUNT_MODES`).

    Returns:
        :class:`FlopCount`.

    Raises:
        ValueError: a stage's ``flops`` returned None for some calls of one
            kind and a number for others (the traced ops of single calls
            cannot be told apart).
    """
    if reducer_count not in REDUCER_COUNT_MODES:
        raise ValueError(f'reducer_count must be one of '
                         f'{REDUCER_COUNT_MODES}, got {reducer_count!r}')
    wrapped = TensorModeWrapper(model)
    was_training = model.training
    model.eval()
    formula_counts: Counter = Counter()
    # stage name -> calls ('forward' / 'restore') that had / lacked a count
    replaced = defaultdict(set)
    kept = defaultdict(set)

    def record(stage, name, call, args, out):
        n = stage.flops(call, args, out, reducer_count)
        if n is None:
            kept[name].add(call)
        else:
            replaced[name].add(call)
            formula_counts[name] += int(n)

    try:
        with _routed_restores(model), torch.no_grad():
            names = {id(m): n for n, m in model.named_modules()}
            hooks = []
            for mod in model.modules():
                if not isinstance(mod, BaseTokenStage):
                    continue
                name = names[id(mod)]

                def fwd_hook(m, args, out, name=name):
                    record(m, name, 'forward', args, out)

                def rst_hook(w, args, out, name=name, stage=mod):
                    record(stage, name, 'restore', args, out)

                hooks.append(mod.register_forward_hook(fwd_hook))
                hooks.append(
                    mod._flops_restore.register_forward_hook(rst_hook))
            try:
                wrapped(inputs)
            finally:
                for h in hooks:
                    h.remove()
            # the traced pass, with the stages' own ops subtracted
            analyzer = FlopAnalyzer(wrapped, (inputs, ))
            for op in _SDPA_OPS:
                analyzer.set_op_handle(op, sdpa_flop_jit)
            analyzer.set_op_handle('aten::_native_multi_head_attention',
                                   native_mha_flop_jit)
            analyzer.set_op_handle('aten::embedding_bag',
                                   embedding_bag_flop_jit)
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            analyzer.tracer_warnings('none')
            traced_total = analyzer.total()
            by_module = analyzer.by_module()
            by_op = Counter(analyzer.by_operator())
            unsupported = dict(analyzer.unsupported_ops())
    finally:
        model.train(was_training)

    mixed = {n: sorted(replaced[n] & kept[n]) for n in replaced
             if replaced[n] & kept[n]}
    if mixed:
        raise ValueError(
            'count_flops: flops() returned None for some calls and a count '
            f'for others of the same kind: {mixed}')

    def scope(name):
        return f'model.{name}' if name else 'model'

    def traced(name):
        return by_module.get(scope(name), 0)

    def replaced_ops(name) -> Counter:
        """Traced per-operator counts of the calls that have a formula
        (a stage's scope includes its restore wrapper, a child)."""
        restore = Counter(analyzer.by_operator(scope(_restore_scope(name))))
        ops = Counter()
        if 'forward' in replaced[name]:
            ops.update(analyzer.by_operator(scope(name)))
            ops.subtract(restore)
        if 'restore' in replaced[name]:
            ops.update(restore)
        return ops

    def traced_replaced(name) -> int:
        restore = traced(_restore_scope(name))
        n = traced(name) - restore if 'forward' in replaced[name] else 0
        return n + (restore if 'restore' in replaced[name] else 0)

    total = traced_total - sum(traced_replaced(n) for n in formula_counts) \
        + sum(formula_counts.values())
    attention = sum(by_op.get(op.split('::')[-1], 0) for op in _SDPA_OPS)
    # per-operator counts of the replaced calls' traced ops are removed from
    # the operator table so that it sums to ``total``
    for name in formula_counts:
        by_op.subtract(replaced_ops(name))
    by_op = {k: v for k, v in by_op.items() if v}
    by_op['reducers'] = sum(formula_counts.values())
    top = OrderedDict()
    for child, _ in model.named_children():
        top[child] = traced(child)
    for name, n in formula_counts.items():
        owner = name.split('.')[0]
        if owner in top:
            top[owner] += n - traced_replaced(name)
    top = OrderedDict((k, int(v)) for k, v in top.items() if v)
    # ops of modules run through an explicit ``.forward(...)`` (mmseg calls
    # ``decode_head.forward``) belong to no child scope
    rest = int(total) - sum(top.values())
    if rest:
        top['(outside sub-module calls)'] = rest
    params = sum(p.numel() for p in model.parameters())
    return FlopCount(total=int(total), attention=int(attention),
                     reducers=dict(formula_counts), by_module=top,
                     by_operator=by_op, params=params,
                     unsupported=unsupported)


def summarize_counts(counts: Sequence[FlopCount],
                     per_image_divisor: int = 1) -> Dict[str, float]:
    """Mean / min / max / std of ``total`` over several counts (for
    input-dependent models), per image."""
    vals = torch.tensor([c.total / per_image_divisor for c in counts],
                        dtype=torch.float64)
    return dict(mean=float(vals.mean()), min=float(vals.min()),
                max=float(vals.max()),
                std=float(vals.std()) if len(vals) > 1 else 0.0,
                n=len(vals))
