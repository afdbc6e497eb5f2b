"""DToP: dynamic token pruning in a plain-ViT segmenter (ICCV 2023;
docs/dtop.md, docs/methods/dtop.md).

The segmentor drives the backbone stage by stage (``ViT.forward_blocks``)
and passes every piece of state explicitly: at the end of each stage a stage
head grades the active tokens, their logits are written into a (B, K, N)
canvas, the confident ones (:func:`vtseg.functional.dtop_prune_mask`) are
finalised and leave every later block, and the final head's confidences are
combined with the frozen logits of the finalised tokens. No head keeps
hidden state, and every head is used in every training step (DDP needs no
``find_unused_parameters``).

Three implementations of "leave every later block" (``impl``):

* ``'pack'`` (default): the active tokens of each image are packed into a
  shorter padded batch (:func:`vtseg.models.utils.pack_tokens`), so later
  blocks run on fewer tokens for the whole batch at once;
* ``'mask'``: tokens stay in place and are masked as keys (their rows are
  zeroed after each block), numerically the reference's computation;
* ``'loop'``: one image at a time, as the reference once anything is pruned
  (for parity tests);

and ``'none'``: the plain segmenter with the same weights (all blocks, then
the final head; the auxiliary heads and thresholds are unused), the
baseline of speed comparisons.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import ModuleList
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.utils import add_prefix
from torch import Tensor

from vtseg.functional.dtop import dtop_prune_mask, write_canvas
from vtseg.registry import MODELS
from ..utils import TokenGrid, pack_tokens

__all__ = ['DToPEncoderDecoder', 'DToPResult']

IMPLEMENTATIONS = ('pack', 'mask', 'loop', 'none')


class DToPResult:
    """Outputs of one DToP forward.

    Attributes:
        probs: (B, K, N) per-class confidences of every patch (final head's
            combination with the frozen logits).
        canvases: per head that ran, its (B, K, N) logit canvas (the
            canvas after that head wrote its active tokens).
        presences: per head that ran, its (B, K, 2) presence logits or None.
        heads: indices (into ``stages``) of the heads that ran.
        finalised: (B, N) int64 index of the stage that finalised each patch
            (the last stage for tokens active to the end).
        active: (B, S) number of active patch tokens during each stage.
        hw: (H, W) patch grid.
    """

    def __init__(self, probs, canvases, presences, heads, finalised, active,
                 hw):
        self.probs = probs
        self.canvases = canvases
        self.presences = presences
        self.heads = heads
        self.finalised = finalised
        self.active = active
        self.hw = hw


@MODELS.register_module()
class DToPEncoderDecoder(EncoderDecoder):
    """Plain-ViT segmenter with DToP stage heads and early exit of easy
    tokens.

    Args:
        backbone: a vtseg ``ViT`` config.
        decode_head: the final stage head (a
            :class:`~vtseg.models.decode_heads.BaseStageHead` config).
        stage_heads: auxiliary stage heads, one per stage before the last.
        stages: the block that ends each stage, increasing; the last one
            (the final head's) must be the backbone's last block. The
            reference's ``out_indices``, e.g. ``[5, 7, 11]`` for ViT-B.
        thresh: pruning threshold of the auxiliary heads (one float, or one
            per auxiliary head), in [0, 1]; 1 prunes nothing.
        topk: candidates kept per class at each pruning (the reference's 5).
        impl: ``'pack'``, ``'mask'``, ``'loop'`` or ``'none'`` (see module
            docstring).
        train_cfg / test_cfg / data_preprocessor / init_cfg: as mmseg's
            ``EncoderDecoder`` (``test_cfg.mode`` ``'whole'`` or
            ``'slide'``). ``train_cfg.loss_scale`` (default 1, the
            reference) computes the losses at that fraction of the label
            resolution (labels resized nearest), for CPU budgets.

    The prediction (``mode='predict'`` / ``'tensor'``) is the (B, K, H, W)
    map of per-class confidences at the input resolution; ``predict`` also
    stores per-image ``token_stats`` (active tokens per stage, the share of
    patches finalised at each stage, and the multiply-adds of the forward,
    heads included) for :class:`~vtseg.evaluation.TokenStatsMetric`, and
    the token-to-stage map ``pred_token_stage``.
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 stage_heads: Sequence[dict],
                 stages: Sequence[int],
                 thresh: Union[float, Sequence[float]] = 1.0,
                 topk: int = 5,
                 impl: str = 'pack',
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 init_cfg=None):
        super().__init__(backbone=backbone, decode_head=decode_head,
                         train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor,
                         pretrained=pretrained, init_cfg=init_cfg)
        # mmengine's ModuleList: init_weights reaches the heads
        self.stage_heads = ModuleList(
            [MODELS.build(cfg) for cfg in stage_heads])
        self.stages = self._check_stages(stages)
        self.thresh = self._check_thresh(thresh)
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 0:
            raise ValueError(f'DToPEncoderDecoder: topk must be an int >= '
                             f'0, got {topk!r}')
        self.topk = topk
        self.impl = impl  # checked by the setter
        classes = {h.num_classes for h in self.heads}
        if len(classes) != 1:
            raise ValueError('DToPEncoderDecoder: every stage head must '
                             'predict the same classes, got num_classes '
                             f'{[h.num_classes for h in self.heads]}')

    # ------------------------------------------------------------ settings
    @property
    def heads(self) -> List[nn.Module]:
        """Auxiliary heads, then the final head (one per stage)."""
        return list(self.stage_heads) + [self.decode_head]

    @property
    def impl(self) -> str:
        return self._impl

    @impl.setter
    def impl(self, value: str) -> None:
        if value not in IMPLEMENTATIONS:
            raise ValueError(f'DToPEncoderDecoder: impl must be one of '
                             f'{IMPLEMENTATIONS}, got {value!r}')
        self._impl = value

    def _check_stages(self, stages: Sequence[int]) -> List[int]:
        depth = self.backbone.depth
        stages = list(stages)
        if len(stages) != len(self.stage_heads) + 1:
            raise ValueError(
                f'DToPEncoderDecoder: stages={stages} needs one block per '
                f'stage head plus the final head ({len(self.stage_heads)} '
                f'stage heads -> {len(self.stage_heads) + 1} stages)')
        for s in stages:
            if isinstance(s, bool) or not isinstance(s, int) or \
                    not 0 <= s < depth:
                raise ValueError(f'DToPEncoderDecoder: stages={stages}: '
                                 f'block {s!r} is out of range for a '
                                 f'{depth}-block backbone (0-based)')
        if any(b <= a for a, b in zip(stages, stages[1:])):
            raise ValueError(f'DToPEncoderDecoder: stages={stages} must be '
                             'strictly increasing')
        if stages[-1] != depth - 1:
            raise ValueError(
                f'DToPEncoderDecoder: stages={stages}: the final head must '
                f'follow the last block ({depth - 1}); blocks after '
                f'{stages[-1]} would never run')
        return stages

    def _check_thresh(self, thresh) -> List[float]:
        n = len(self.stage_heads)
        values = list(thresh) if isinstance(thresh, (list, tuple)) else \
            [thresh] * n
        if len(values) != n:
            raise ValueError(f'DToPEncoderDecoder: thresh={thresh!r} needs '
                             f'one value per stage head ({n})')
        for t in values:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or \
                    not 0.0 <= t <= 1.0:
                raise ValueError(f'DToPEncoderDecoder: thresh={thresh!r} '
                                 'must lie in [0, 1] (1 prunes nothing)')
        return [float(t) for t in values]

    def set_thresh(self, thresh: Union[float, Sequence[float]]) -> None:
        """Change the pruning thresholds (checked as at construction)."""
        self.thresh = self._check_thresh(thresh)

    # ------------------------------------------------------------- forward
    def _check_labels(self, labels: Tensor) -> None:
        ignore = self.decode_head.ignore_index
        real = labels[labels != ignore]
        if real.numel() and int(real.max()) >= self.decode_head.num_classes:
            raise ValueError(
                f'DToPEncoderDecoder: a label is {int(real.max())} but the '
                f'stage heads have num_classes={self.decode_head.num_classes}'
                '; set the heads\' num_classes to the dataset\'s class count')

    def unpruned_prefix(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """Tokens (B, T, C) at the end of every leading stage that runs
        before any pruning can happen (all stages when every ``thresh`` is
        1, else up to the first pruning stage) and whose parameters are all
        frozen (no ``requires_grad``; empty when the embeddings train).
        Deterministic per image, so ``FrozenBackboneCacheHook(method=
        'unpruned_prefix')`` can memoise it during training."""
        bb = self.backbone
        embed_params = [bb.patch_embed.parameters(), [
            p for p in (bb.cls_token, bb.reg_token, bb.pos_embed)
            if p is not None]]
        if any(p.requires_grad for ps in embed_params for p in ps):
            return ()
        grid = bb.embed(inputs)
        outs, start = [], 0
        for s, end in enumerate(self.stages):
            if any(p.requires_grad for blk in bb.blocks[start:end + 1]
                   for p in blk.parameters()):
                break
            grid = bb.forward_blocks(grid, start, end + 1)
            outs.append(grid.x)
            start = end + 1
            if s < len(self.thresh) and self.thresh[s] < 1:
                break
        return tuple(outs)

    def _head_tokens(self, patches: Tensor, last: bool) -> Tensor:
        """The backbone's output norm, applied as to its output levels
        (the final LayerNorm on the last stage, or on every stage with
        ``norm_outputs='all'``)."""
        bb = self.backbone
        if bb.norm is not None and (last or bb.norm_outputs == 'all'):
            return bb.norm(patches)
        return patches

    def _grid_hw(self, inputs: Tensor) -> Tuple[int, int]:
        p = self.backbone.patch_size
        return (-(-inputs.shape[-2] // p), -(-inputs.shape[-1] // p))

    def dtop_forward(self, inputs: Tensor,
                     impl: Optional[str] = None) -> DToPResult:
        """Run the pruned network on a batch.

        Args:
            inputs: (B, 3, H_img, W_img) normalised images.
            impl: override ``self.impl``.

        Returns:
            :class:`DToPResult`.
        """
        impl = impl or self.impl
        if impl == 'none':
            return self._plain_forward(inputs)
        if impl == 'loop' and inputs.shape[0] > 1:
            return self._cat_results(
                [self.dtop_forward(inputs[b:b + 1], 'pack')
                 for b in range(inputs.shape[0])])
        B = inputs.shape[0]
        hw = self._grid_hw(inputs)
        N = hw[0] * hw[1]
        heads = self.heads
        S = len(heads)
        K = self.decode_head.num_classes
        prefix = self.unpruned_prefix(inputs)
        n_prefix = self.backbone.n_prefix
        canvas = inputs.new_zeros(B, K, N)
        finalised = torch.full((B, N), S - 1, dtype=torch.long,
                               device=inputs.device)
        active = torch.zeros(B, S, dtype=torch.long, device=inputs.device)
        canvases, presences, ran = [], [], []
        grid, start = None, 0
        for s, (end, head) in enumerate(zip(self.stages, heads)):
            if s < len(prefix):
                grid = TokenGrid(x=prefix[s], hw=hw, n_prefix=n_prefix)
            else:
                if grid is None:  # nothing frozen to start from
                    grid = self.backbone.embed(inputs)
                grid = self.backbone.forward_blocks(grid, start, end + 1)
            start = end + 1
            valid = grid.valid
            active[:, s] = grid.num_tokens if valid is None else valid.sum(1)
            last = s == S - 1
            thresh = 1.0 if last else self.thresh[s]
            if thresh >= 1 and not last and not self.training:
                # nothing to prune and every column is overwritten later:
                # the head's output would never be used
                continue
            merged = grid.index < 0
            if bool((merged if valid is None else merged & valid).any()):
                raise ValueError(
                    'DToPEncoderDecoder: a token stage merged tokens (index '
                    '-1), but the pruning path writes one token per patch: '
                    "use impl='none' (no pruning) with merging stages")
            out = head(self._head_tokens(grid.patches, last), valid)
            canvas = write_canvas(canvas, out.mask_logits, grid.index, valid)
            canvases.append(canvas)
            presences.append(out.presence)
            ran.append(s)
            if thresh >= 1:
                continue
            with torch.no_grad():
                scores = head.class_probs(out.mask_logits, out.presence)
                if valid is not None:
                    scores = scores * valid[:, None, :].to(scores.dtype)
                prune = dtop_prune_mask(scores, thresh, self.topk)
                if valid is not None:
                    prune &= valid
                idx = torch.where(prune, grid.index,
                                  torch.full_like(grid.index, N))
                fin = torch.cat([finalised, finalised.new_zeros(B, 1)], 1)
                fin.scatter_(1, idx, s)
                finalised = fin[:, :N]
            keep = ~prune if valid is None else valid & ~prune
            if impl == 'mask':
                grid = grid.replace(valid=keep)
            else:
                grid = pack_tokens(grid, keep, owner=f'DToP stage {s}')
        probs = self.decode_head.class_probs(canvas, presences[-1])
        return DToPResult(probs, canvases, presences, ran, finalised, active,
                          hw)

    def _plain_forward(self, inputs: Tensor) -> DToPResult:
        """Every block on every token, then the final head only."""
        B = inputs.shape[0]
        out = self.backbone.forward_features(
            inputs, token_layers=[self.stages[-1]], out_indices=[])
        tokens = self._head_tokens(out['tokens'][self.stages[-1]], True)
        grid = out['grid']
        # token stages that merge (ToMe, ALGM) are undone before the head,
        # which grades one token per patch
        while grid.restores:
            if not grid.restores[-1].can_undo:
                raise ValueError(
                    f'DToPEncoderDecoder: {grid.restores[-1].owner} changed '
                    'the token set in a way the final head cannot undo')
            norm = self.backbone.norm
            grid, tokens = grid.undo_top(tokens, norm)
        tokens = tokens[:, self.backbone.n_prefix:]
        head_out = self.decode_head(tokens)
        probs = self.decode_head.class_probs(head_out.mask_logits,
                                             head_out.presence)
        hw = tuple(out['hw'])
        S = len(self.stages)
        N = hw[0] * hw[1]
        return DToPResult(
            probs, [head_out.mask_logits], [head_out.presence], [S - 1],
            torch.full((B, N), S - 1, dtype=torch.long,
                       device=inputs.device),
            torch.full((B, S), N, dtype=torch.long, device=inputs.device),
            hw)

    @staticmethod
    def _cat_results(results: List[DToPResult]) -> DToPResult:
        def cat(items):
            return None if items[0] is None else torch.cat(items)

        first = results[0]
        return DToPResult(
            torch.cat([r.probs for r in results]),
            [cat([r.canvases[i] for r in results])
             for i in range(len(first.canvases))],
            [cat([r.presences[i] for r in results])
             for i in range(len(first.presences))],
            first.heads, torch.cat([r.finalised for r in results]),
            torch.cat([r.active for r in results]), first.hw)

    def _to_map(self, values: Tensor, hw: Tuple[int, int],
                size: Tuple[int, int]) -> Tensor:
        """(B, K, N) per-patch values -> (B, K, H_img, W_img): bilinear
        upsampling to the patch grid's pixel extent, then the padding the
        patch embedding added (bottom / right) is cropped."""
        B, K, _ = values.shape
        p = self.backbone.patch_size
        grid = values.view(B, K, hw[0], hw[1])
        up = F.interpolate(grid, size=(hw[0] * p, hw[1] * p),
                           mode='bilinear',
                           align_corners=self.align_corners)
        return up[..., :size[0], :size[1]]

    # --------------------------------------------------- mmseg interfaces
    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """The unpruned backbone maps (mmseg API; DToP itself runs
        :meth:`dtop_forward`)."""
        return list(self.backbone(inputs))

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """(B, 3, H, W) -> (B, K, H, W) per-class confidences."""
        res = self.dtop_forward(inputs)
        if self._stats is not None:
            self._stats.append(self._image_stats(res))
        return self._to_map(res.probs, res.hw, inputs.shape[-2:])

    def _forward(self, inputs: Tensor, data_samples=None) -> Tensor:
        res = self.dtop_forward(inputs)
        return self._to_map(res.probs, res.hw, inputs.shape[-2:])

    def loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        """Losses of every head that ran, each on its own canvas (frozen
        logits included) at label resolution."""
        labels = torch.stack(
            [s.gt_sem_seg.data[0] for s in data_samples]).long()
        self._check_labels(labels)
        scale = float((self.train_cfg or {}).get('loss_scale', 1.0))
        if scale != 1.0:
            # cheaper losses: labels nearest-resized (a CPU budget option)
            size = [max(1, round(s * scale)) for s in labels.shape[-2:]]
            labels = F.interpolate(labels[:, None].float(), size=size,
                                   mode='nearest')[:, 0].long()
        res = self.dtop_forward(inputs)
        size = labels.shape[-2:]
        losses: Dict[str, Tensor] = {}
        heads = self.heads
        for s, canvas, presence in zip(res.heads, res.canvases,
                                       res.presences):
            head = heads[s]
            logits = self._to_map(canvas, res.hw, inputs.shape[-2:])
            if logits.shape[-2:] != size:
                logits = F.interpolate(logits, size=size, mode='bilinear',
                                       align_corners=self.align_corners)
            name = 'decode' if s == len(heads) - 1 else f'stage{s}'
            losses.update(add_prefix(head.loss(logits, presence, labels),
                                     name))
            if s == len(heads) - 1:
                with torch.no_grad():
                    probs = self._to_map(res.probs, res.hw,
                                         inputs.shape[-2:])
                    if probs.shape[-2:] != size:
                        probs = F.interpolate(probs, size=size,
                                              mode='bilinear')
                    valid = labels != head.ignore_index
                    correct = (probs.argmax(1) == labels) & valid
                    losses['decode.acc_seg'] = 100.0 * correct.sum() / \
                        valid.sum().clamp(min=1)
        return losses

    _stats: Optional[list] = None

    def predict(self, inputs: Tensor, data_samples=None):
        """mmseg prediction, plus ``token_stats`` in every data sample
        (summed over the crops of sliding-window inference) and, for
        whole-image inference, ``pred_token_stage``: (1, h, w) int64 index
        of the stage that finalised each token (the demos' pruning view)."""
        self._stats = []  # filled by encode_decode during this call only
        try:
            results = super().predict(inputs, data_samples)
        finally:
            stats, self._stats = self._stats, None
        B = len(results)
        per_image = [dict(flops=0, active=None, finalised=None, crops=0,
                          stage_map=None) for _ in range(B)]
        for batch in stats:
            for b, st in enumerate(batch):
                # slide inference runs crops with batch 1 per image order
                img = b if len(batch) == B else 0
                acc = per_image[img]
                acc['flops'] += st['flops']
                acc['crops'] += 1
                acc['stage_map'] = st['stage_map']
                for key in ('active', 'finalised'):
                    acc[key] = st[key] if acc[key] is None else \
                        [a + v for a, v in zip(acc[key], st[key])]
        for sample, acc in zip(results, per_image):
            n = max(acc['crops'], 1)
            sample.set_field(
                dict(flops=acc['flops'],
                     active=[a / n for a in acc['active'] or []],
                     finalised=[f / n for f in acc['finalised'] or []],
                     crops=acc['crops']), 'token_stats', field_type='metainfo')
            if acc['crops'] == 1:  # whole-image inference: one token grid
                sample.pred_token_stage = PixelData(
                    data=acc['stage_map'][None])
        return results

    # --------------------------------------------------------------- FLOPs
    def _image_stats(self, res: DToPResult) -> List[dict]:
        N = res.hw[0] * res.hw[1]
        S = len(self.stages)
        stats = []
        for b in range(res.probs.shape[0]):
            active = [int(a) for a in res.active[b]]
            counts = torch.bincount(res.finalised[b], minlength=S)
            stats.append(dict(
                flops=self.image_flops(active, res.hw, res.heads),
                active=active,
                finalised=[float(c) / N for c in counts],
                stage_map=res.finalised[b].view(res.hw)))
        return stats

    def image_flops(self, active: Sequence[int], hw: Tuple[int, int],
                    heads_run: Sequence[int]) -> int:
        """Multiply-adds of one image's pruned forward, counted as
        :func:`vtseg.analysis.count_flops` counts them (tested to agree):
        the patch embedding, each block on the tokens active in its stage
        (two LayerNorms at 5 per element, qkv, projection, MLP, attention
        products 2 * T^2 * C), the output norm on the tokens given to the
        heads, every head that ran (its :meth:`flops`) and the final
        bilinear upsampling (4 per output element). Other elementwise
        operations count 0.

        Args:
            active: active patch tokens during each stage.
            hw: (H, W) patch grid.
            heads_run: stages whose head ran.
        """
        bb = self.backbone
        C = bb.embed_dims
        p = bb.patch_size
        N = hw[0] * hw[1]
        in_ch = bb.patch_embed.proj.in_channels
        total = N * C * in_ch * p * p
        start = 0
        for s, end in enumerate(self.stages):
            T = active[s] + bb.n_prefix
            for i in range(start, end + 1):
                hidden = bb.blocks[i].mlp.fc1.out_features
                total += (10 * T * C + 4 * T * C * C + 2 * T * C * hidden +
                          2 * T * T * C)
            start = end + 1
        heads = self.heads
        for s in heads_run:
            last = s == len(heads) - 1
            if bb.norm is not None and (last or bb.norm_outputs == 'all'):
                total += 5 * active[s] * C
            total += heads[s].flops(active[s])
        total += 4 * self.decode_head.num_classes * N * p * p
        return int(total)
