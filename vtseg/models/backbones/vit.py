"""The one plain Vision Transformer backbone that every vtseg method uses.

Layout and parameter names follow timm's ``vision_transformer.py``
(``patch_embed.proj``, ``cls_token``, ``reg_token``, ``pos_embed``,
``blocks.{i}.{norm1,attn.qkv,attn.proj,ls1,norm2,mlp.fc1,mlp.fc2,ls2}``,
``norm``), so timm / DINO / DINOv2 / mmseg / Segmenter checkpoints convert by
renaming only (``tools/model_converters``).

Extension points (docs/backbone.md):

1. ``token_stages``: modules (:class:`~vtseg.models.reducers.BaseTokenStage`)
   that run after a block, or between a block's attention and MLP with the
   block's keys, and may change the token set. The record passed between
   blocks is a :class:`~vtseg.models.utils.TokenGrid` (tokens, their
   original patches, a validity mask, sizes, an attention bias and a stack
   of restore states).
2. output restoration: output levels taken while the token set is changed
   are mapped back to the full (H, W) grid by unwinding the restore stack
   (output restorers, ``after_block=None``, and the states' own undo), or
   handed to the decode head as a
   :class:`~vtseg.models.utils.ClusteredFeatureMap`.
3. ``valid`` masks: padding / pruned tokens are masked as keys inside
   attention and their rows are zeroed after each block; ``attn_bias`` adds
   a float bias (e.g. proportional attention).
4. injectable layers: ``block_cfg`` / ``attn_cfg`` choose the block and
   attention classes from the registry; ``window_size`` / ``global_blocks``
   make blocks windowed (ViTDet); ``with_cp`` checkpoints activations.
5. :meth:`ViT.forward_features` returns, besides the output maps, the tokens
   and the attention q / k / v of any requested block (TokenCut uses the
   last block's keys).
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from vtseg.registry import MODELS
from ..layers import PatchEmbed, init_transformer_weights, resize_pos_embed
from ..reducers.base import BaseTokenStage
from ..utils import ClusteredFeatureMap, TokenGrid
from ..utils.checkpoint import load_pretrained_strict

__all__ = ['ViT']


@MODELS.register_module()
class ViT(BaseModule):
    """Plain ViT backbone for dense prediction.

    Args:
        img_size: pre-training image size; with ``patch_size`` it fixes the
            position table grid (e.g. 224/16 -> 14x14, DINOv2 518/14 -> 37x37).
        patch_size: patch side p (8, 14, 16, ...).
        in_channels: input channels.
        embed_dims: token width C.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / C.
        qkv_bias: bias in the qkv projection.
        with_cls_token: prepend a learned cls token.
        num_register_tokens: learned register tokens inserted after cls
            (DINOv2-reg); they get no position embedding.
        pos_embed_with_cls: the position table has an entry for the cls token
            (timm, DINO, DINOv2 layouts).
        layer_scale: LayerScale init value, None for no LayerScale.
        drop_rate / attn_drop_rate / drop_path_rate: regularisation; drop path
            grows linearly from 0 to ``drop_path_rate`` over the blocks.
        final_norm: apply the final LayerNorm ``norm`` to output levels.
        norm_outputs: ``'last'`` applies it to the last block's output only
            (mmseg / timm), ``'all'`` to every output level (DINOv2
            ``get_intermediate_layers``).
        norm_eps: LayerNorm epsilon (1e-6 timm / DINO / DINOv2).
        out_indices: blocks whose outputs are returned as (B, C, H, W) maps.
        interpolate_mode: position table interpolation (``'bicubic'``).
        token_stages: configs (or modules) of token stages, see
            :mod:`vtseg.models.reducers.base`.
        frozen_blocks: freeze the embeddings and the first ``frozen_blocks``
            blocks (-1: nothing frozen; ``depth``: everything, final norm
            included). Frozen parts stay in eval mode.
        block_cfg: registry config of the block class (default
            ``dict(type='ViTBlock')``); the ViT fills in the sizes.
        attn_cfg: registry config of the attention class (default
            ``dict(type='ViTAttention')``, or ``'WindowedAttention'`` when
            ``window_size`` or ``use_rel_pos`` is set).
        window_size: window side in patches for windowed attention (ViTDet);
            an int for every block or a list with one entry per block; 0 =
            global attention.
        global_blocks: blocks that keep global attention whatever
            ``window_size`` says (ViTDet: e.g. 2, 5, 8, 11 for ViT-B).
        use_rel_pos: decomposed relative position bias in every block
            (ViTDet / MViTv2); tables are sized for the window (windowed
            blocks) or the pre-training grid (global blocks).
        rel_pos_zero_init: zero-initialise the relative position tables.
        with_cp: activation checkpointing of every block while training
            (less memory, one extra forward per block in the backward pass);
            a list of block indices checkpoints only those.
        init_cfg: mmengine init config; ``dict(type='Pretrained',
            checkpoint=..., prefix=...)`` loads **strictly** (missing,
            unexpected or mis-shaped keys raise an error naming them).
    """

    def __init__(self,
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 embed_dims: int = 768,
                 depth: int = 12,
                 num_heads: int = 12,
                 mlp_ratio: float = 4.0,
                 qkv_bias: bool = True,
                 with_cls_token: bool = True,
                 num_register_tokens: int = 0,
                 pos_embed_with_cls: bool = True,
                 layer_scale: Optional[float] = None,
                 drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0,
                 final_norm: bool = True,
                 norm_outputs: str = 'last',
                 norm_eps: float = 1e-6,
                 out_indices: Union[int, Sequence[int]] = -1,
                 interpolate_mode: str = 'bicubic',
                 token_stages: Optional[List[Union[dict,
                                                   nn.Module]]] = None,
                 frozen_blocks: int = -1,
                 block_cfg: Optional[dict] = None,
                 attn_cfg: Optional[dict] = None,
                 window_size: Union[int, Sequence[int]] = 0,
                 global_blocks: Sequence[int] = (),
                 use_rel_pos: bool = False,
                 rel_pos_zero_init: bool = True,
                 with_cp: Union[bool, Sequence[int]] = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(img_size, int):
            img_size = (img_size, img_size)
        if norm_outputs not in ('last', 'all'):
            raise ValueError(
                f"norm_outputs must be 'last' or 'all', got {norm_outputs!r}")
        if pos_embed_with_cls and not with_cls_token:
            raise ValueError('pos_embed_with_cls=True needs with_cls_token')
        self.patch_size = patch_size
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.depth = depth
        self.with_cls_token = with_cls_token
        self.num_register_tokens = num_register_tokens
        self.n_prefix = int(with_cls_token) + num_register_tokens
        self.pos_embed_with_cls = pos_embed_with_cls
        self.pos_hw = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.final_norm = final_norm
        self.norm_outputs = norm_outputs
        self.interpolate_mode = interpolate_mode
        self.out_indices = self._resolve_indices(out_indices, 'out_indices')
        self.window_sizes = self._window_sizes(window_size, global_blocks)
        self.cp_blocks = self._cp_blocks(with_cp)

        self.patch_embed = PatchEmbed(patch_size, in_channels, embed_dims)
        self.cls_token = nn.Parameter(torch.zeros(
            1, 1, embed_dims)) if with_cls_token else None
        self.reg_token = nn.Parameter(torch.zeros(
            1, num_register_tokens,
            embed_dims)) if num_register_tokens else None
        n_pos = self.pos_hw[0] * self.pos_hw[1] + int(pos_embed_with_cls)
        self.pos_embed = nn.Parameter(torch.zeros(1, n_pos, embed_dims))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        attn_cfgs = self._attention_cfgs(attn_cfg, use_rel_pos,
                                         rel_pos_zero_init)
        self.blocks = nn.ModuleList()
        for i in range(depth):
            cfg = dict(block_cfg or dict(type='ViTBlock'))
            cfg.update(dim=embed_dims, num_heads=num_heads,
                       mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                       drop=drop_rate, attn_drop=attn_drop_rate,
                       drop_path=dpr[i], layer_scale=layer_scale,
                       norm_eps=norm_eps, attn_cfg=attn_cfgs[i])
            self.blocks.append(MODELS.build(cfg))
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps) if final_norm \
            else None

        self.set_token_stages(token_stages or [])
        self.frozen_blocks = frozen_blocks
        self._freeze()

    # ------------------------------------------------------------ utilities
    def _resolve_indices(self, indices, name) -> List[int]:
        if isinstance(indices, int):
            indices = [indices]
        out = []
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, int):
                raise ValueError(f'{name}: block index {i!r} is not an int')
            j = i + self.depth if i < 0 else i
            if not 0 <= j < self.depth:
                raise ValueError(f'{name}: block index {i} is out of range '
                                 f'for depth {self.depth}')
            out.append(j)
        return out

    def _window_sizes(self, window_size, global_blocks) -> List[int]:
        if isinstance(window_size, int):
            sizes = [window_size] * self.depth
        else:
            sizes = list(window_size)
            if len(sizes) != self.depth:
                raise ValueError(f'window_size has {len(sizes)} entries, '
                                 f'expected one per block ({self.depth})')
        if any(not isinstance(s, int) or s < 0 for s in sizes):
            raise ValueError(f'window_size entries must be ints >= 0, got '
                             f'{window_size!r}')
        for i in self._resolve_indices(list(global_blocks), 'global_blocks'):
            sizes[i] = 0
        return sizes

    def _cp_blocks(self, with_cp) -> frozenset:
        if isinstance(with_cp, bool):
            return frozenset(range(self.depth)) if with_cp else frozenset()
        return frozenset(self._resolve_indices(list(with_cp), 'with_cp'))

    def _attention_cfgs(self, attn_cfg, use_rel_pos,
                        rel_pos_zero_init) -> List[Optional[dict]]:
        """Per-block attention configs: ``attn_cfg`` as given, or
        ``WindowedAttention`` for windowed / relative-position blocks."""
        windowed = any(self.window_sizes) or use_rel_pos
        if attn_cfg is None and not windowed:
            return [None] * self.depth  # the block's default attention
        cfgs = []
        for i, ws in enumerate(self.window_sizes):
            cfg = dict(attn_cfg or dict(type='WindowedAttention'))
            if windowed:
                cfg.update(window_size=ws, use_rel_pos=use_rel_pos,
                           rel_pos_zero_init=rel_pos_zero_init,
                           input_size=self.pos_hw)
            cfgs.append(cfg)
        return cfgs

    def set_token_stages(self,
                         stages: Sequence[Union[dict, nn.Module]]) -> None:
        """Install token stages (configs or built modules; ``[]`` removes
        them all), replacing any installed before.

        Raises ``ValueError`` for block indices out of range and for
        ``position='attn'`` stages in windowed blocks.
        """
        # Configs are built in vtseg's scope whatever the default scope is
        # (the mmdet detectors swap stages under default_scope='mmdet').
        self.token_stages = nn.ModuleList([
            s if isinstance(s, nn.Module) else MODELS.build(
                dict(copy.deepcopy(s), _scope_=s.get('_scope_', 'vtseg')))
            for s in stages
        ])
        self._stages_after: Dict[int, List[BaseTokenStage]] = {}
        self._stages_mid: Dict[int, List[BaseTokenStage]] = {}
        self.output_restorers: List[BaseTokenStage] = []
        for stage in self.token_stages:
            if not isinstance(stage, BaseTokenStage):
                raise TypeError(f'token stage {type(stage).__name__} is not '
                                'a BaseTokenStage')
            name = f'{type(stage).__name__}.after_block'
            if stage.after_block is None:
                self.output_restorers.append(stage)
                continue
            table = self._stages_mid if stage.position == 'attn' else \
                self._stages_after
            for i in self._resolve_indices(stage.blocks, name):
                if stage.position == 'attn' and self.window_sizes[i]:
                    raise ValueError(
                        f"{type(stage).__name__}(position='attn') cannot "
                        f'run inside block {i}: it uses windowed attention '
                        '(token stages need global blocks)')
                table.setdefault(i, []).append(stage)

    def _freeze(self):
        if self.frozen_blocks < 0:
            return
        frozen: List[nn.Module] = [self.patch_embed]
        frozen += list(self.blocks[:self.frozen_blocks])
        if self.frozen_blocks >= self.depth and self.norm is not None:
            frozen.append(self.norm)
        for m in frozen:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False
        for p in (self.cls_token, self.reg_token, self.pos_embed):
            if p is not None:
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze()
        return self

    def init_weights(self):
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            load_pretrained_strict(self, cfg['checkpoint'],
                                   prefix=cfg.get('prefix', ''))
            self._is_init = True
            return
        if cfg is None:
            trunc_normal_(self.pos_embed, std=0.02)
            if self.cls_token is not None:
                nn.init.normal_(self.cls_token, std=1e-6)
            if self.reg_token is not None:
                nn.init.normal_(self.reg_token, std=1e-6)
            init_transformer_weights(self)
            for blk in self.blocks:  # e.g. relative position tables
                reset = getattr(blk.attn, 'reset_rel_pos', None)
                if reset is not None:
                    reset()
            self._is_init = True
            return
        super().init_weights()

    # ------------------------------------------------------------- forward
    def embed(self, inputs: Tensor) -> TokenGrid:
        """Patchify, add position embeddings, prepend prefix tokens.

        Args:
            inputs: (B, 3, H_img, W_img) normalised images (any size; padded
                bottom/right to a multiple of the patch size).

        Returns:
            TokenGrid with x (B, n_prefix + H*W, C).
        """
        x, hw = self.patch_embed(inputs)
        B = x.shape[0]
        off = int(self.pos_embed_with_cls)
        patch_pos = resize_pos_embed(self.pos_embed[:, off:], self.pos_hw, hw,
                                     self.interpolate_mode)
        x = x + patch_pos
        prefix = []
        if self.cls_token is not None:
            cls = self.cls_token
            if off:
                cls = cls + self.pos_embed[:, :1]
            prefix.append(cls.expand(B, -1, -1))
        if self.reg_token is not None:
            prefix.append(self.reg_token.expand(B, -1, -1))
        if prefix:
            x = torch.cat(prefix + [x], dim=1)
        return TokenGrid(x=self.pos_drop(x), hw=hw, n_prefix=self.n_prefix)

    def _restore_output(self, grid: TokenGrid, x: Tensor, block_idx: int,
                        transform):
        """Unwind the restore stack for one output level: (B, T, C)
        normalised tokens -> (B, n_prefix + H*W, C) tokens (or the tokens
        of the regular grid where unwinding stops, with that grid), or a
        :class:`ClusteredFeatureMap`. ``transform`` is the level's norm
        (None: none), for states that put back stored tokens."""
        while grid.restores:
            state = grid.restores[-1]
            restorer = next(
                (r for r in self.output_restorers if r.restores(state)),
                None)
            if restorer is not None:
                grid, x = restorer.restore(grid, x)
                if isinstance(x, ClusteredFeatureMap):
                    if grid.restores:
                        raise RuntimeError(
                            f'{type(restorer).__name__} hands output level '
                            f'{block_idx} to the decode head, but '
                            f'{grid.restores[-1].owner} changed the tokens '
                            'before it: the head cannot undo that '
                            "(use restore='backbone')")
                    return grid, x
            elif state.can_undo:
                grid, x = grid.undo_top(x, transform)
            else:
                break
        if grid.restores and grid.reduced_hw is None:
            raise RuntimeError(
                f'output of block {block_idx} is requested while the token '
                f'set is changed by {grid.restores[-1].owner}, but no output '
                'restorer (token stage with after_block=None) undoes it and '
                'the tokens form no regular grid')
        return grid, x

    def _output_map(self, grid: TokenGrid, block_idx: int):
        """Output level of block ``block_idx`` as (B, C, H, W) (or a
        :class:`ClusteredFeatureMap` of that shape, see token stages)."""
        x = grid.x
        norm = self.norm if self.norm is not None and (
            self.norm_outputs == 'all' or block_idx == self.depth - 1) \
            else None
        if norm is not None:
            x = norm(x)
        if grid.restores:
            grid, x = self._restore_output(grid, x, block_idx, norm)
            if isinstance(x, ClusteredFeatureMap):
                return x  # rebuilt by the decode head
        hw = grid.reduced_hw if grid.restores else grid.hw
        patches = x[:, grid.n_prefix:]
        B, N, C = patches.shape
        if N != hw[0] * hw[1]:
            raise RuntimeError(f'cannot view {N} tokens as a {hw} grid')
        return patches.transpose(1, 2).reshape(B, C, hw[0], hw[1])

    def _run_block(self, i: int, blk: nn.Module, grid: TokenGrid,
                   return_qkv: bool):
        """Block i on the grid, with its ``position='attn'`` stages between
        attention and MLP. Returns (grid, qkv or None)."""
        key_mask = grid.key_mask()
        layout = grid.layout
        if self.window_sizes[i] and layout is None:
            raise RuntimeError(
                f'block {i} uses windowed attention, which needs the patch '
                'tokens on a regular grid, but '
                f'{grid.restores[-1].owner if grid.restores else "a stage"} '
                'made them irregular (pruned / packed / merged); restore '
                'them before this block or make it global (global_blocks)')
        args = (key_mask, grid.attn_bias, layout, grid.n_prefix)
        cp = i in self.cp_blocks and self.training and torch.is_grad_enabled()
        mids = self._stages_mid.get(i)
        qkv = None
        if mids is None:
            if cp:
                res = checkpoint(blk, grid.x, *args, return_qkv,
                                 use_reentrant=False)
            else:
                res = blk(grid.x, *args, return_qkv)
            if return_qkv:
                res, qkv = res
        else:
            if cp:
                x, qkv = checkpoint(blk.attention_residual, grid.x, *args,
                                    True, use_reentrant=False)
            else:
                x, qkv = blk.attention_residual(grid.x, *args, True)
            grid.x = x
            for stage in mids:
                grid = stage(grid, block=i, keys=qkv[1])
            key_mask = grid.key_mask()
            res = checkpoint(blk.mlp_residual, grid.x, use_reentrant=False) \
                if cp else blk.mlp_residual(grid.x)
        if key_mask is not None:  # padding / pruned rows stay zero
            res = res * key_mask[..., None].to(res.dtype)
        grid.x = res
        return grid, qkv

    def forward_blocks(self, grid: TokenGrid, start: int,
                       stop: int) -> TokenGrid:
        """Run blocks ``start`` .. ``stop - 1`` (with their token stages) on
        a grid from :meth:`embed` or an earlier call; no output maps.

        For callers that act between blocks themselves (DToP's segmentor
        grades and prunes tokens at its stage ends).
        """
        if not 0 <= start <= stop <= self.depth:
            raise ValueError(f'forward_blocks: need 0 <= start <= stop <= '
                             f'depth={self.depth}, got {start}, {stop}')
        for i in range(start, stop):
            grid, _ = self._run_block(i, self.blocks[i], grid, False)
            for stage in self._stages_after.get(i, ()):
                grid = stage(grid, block=i)
        return grid

    @property
    def frozen_prefix_depth(self) -> int:
        """Number of leading blocks that :meth:`frozen_prefix` runs: the
        frozen ones (``frozen_blocks``), up to the first block with a token
        stage (a stage may change the token set, which one tensor cannot
        carry)."""
        n = min(max(self.frozen_blocks, 0), self.depth)
        staged = set(self._stages_after) | set(self._stages_mid)
        return next((i for i in range(n) if i in staged), n)

    def frozen_prefix(self, inputs: Tensor) -> Tensor:
        """Tokens after the embeddings and the first
        :attr:`frozen_prefix_depth` blocks.

        :meth:`forward_features` starts from this call whenever it needs no
        output, qkv or tokens of those blocks, so that
        ``FrozenBackboneCacheHook(method='backbone.frozen_prefix')`` can
        memoise the frozen part per training image while the later blocks
        train (the cached call depends on frozen parameters only).

        Args:
            inputs: (B, 3, H_img, W_img) normalised images.

        Returns:
            (B, n_prefix + H*W, C) tokens, H = ceil(H_img / p),
            W = ceil(W_img / p).
        """
        return self.forward_blocks(self.embed(inputs), 0,
                                   self.frozen_prefix_depth).x

    def forward_features(self,
                         inputs: Tensor,
                         qkv_layers: Sequence[int] = (),
                         token_layers: Sequence[int] = (),
                         out_indices: Optional[Sequence[int]] = None
                         ) -> dict:
        """Run the backbone and return what the methods need.

        Args:
            inputs: (B, 3, H_img, W_img) normalised images.
            qkv_layers: blocks whose attention q, k, v are returned.
            token_layers: blocks whose output tokens (before any final norm
                and before token stages of that block) are returned.
            out_indices: override ``self.out_indices``; ``[]`` to skip maps
                (and stop after the last block needed).

        Returns:
            dict with ``outs`` (list of (B, C, H, W) maps, one per out index),
            ``qkv`` ({block: (q, k, v)}, each (B, heads, T, C/heads), taken
            before the block's ``position='attn'`` stages), ``tokens``
            ({block: (B, T, C)}), ``hw`` ((H, W) patch grid), ``n_prefix``
            and ``grid`` (the final TokenGrid).
        """
        outs_idx = self.out_indices if out_indices is None else \
            self._resolve_indices(list(out_indices), 'out_indices')
        qkv_idx = set(self._resolve_indices(list(qkv_layers), 'qkv_layers'))
        tok_idx = set(self._resolve_indices(list(token_layers),
                                            'token_layers'))
        wanted = list(outs_idx) + list(qkv_idx) + list(tok_idx)
        last = self.depth - 1 if out_indices is None else max(wanted + [-1])
        # start after the frozen blocks when nothing inside them is needed
        start = self.frozen_prefix_depth
        if start and last >= start - 1 and \
                min(wanted, default=self.depth) >= start:
            grid = TokenGrid(x=self.frozen_prefix(inputs),
                             hw=self.patch_embed.grid_size(
                                 *inputs.shape[-2:]),
                             n_prefix=self.n_prefix)
        else:
            start = 0
            grid = self.embed(inputs)
        hw = grid.hw
        outs, qkvs, tokens = {}, {}, {}
        for i in range(start, last + 1):
            blk = self.blocks[i]
            grid, qkv = self._run_block(i, blk, grid, i in qkv_idx)
            if i in qkv_idx:
                qkvs[i] = qkv
            if i in tok_idx:
                tokens[i] = grid.x
            # The output of block i is taken before the stages that run
            # after block i (a level taken before clustering is unchanged).
            if i in outs_idx:
                outs[i] = self._output_map(grid, i)
            for stage in self._stages_after.get(i, ()):
                grid = stage(grid, block=i)
        return dict(outs=[outs[i] for i in outs_idx], qkv=qkvs,
                    tokens=tokens, hw=hw, n_prefix=self.n_prefix, grid=grid)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H_img, W_img) -> tuple of (B, C, H, W) maps, one per
        ``out_indices`` entry (mmseg backbone contract)."""
        return tuple(self.forward_features(inputs)['outs'])
