"""The one plain Vision Transformer backbone that every vtseg method uses.

Layout and parameter names follow timm's ``vision_transformer.py``
(``patch_embed.proj``, ``cls_token``, ``reg_token``, ``pos_embed``,
``blocks.{i}.{norm1,attn.qkv,attn.proj,ls1,norm2,mlp.fc1,mlp.fc2,ls2}``,
``norm``), so timm / DINO / DINOv2 / mmseg / Segmenter checkpoints convert by
renaming only (``tools/model_converters``).

Extension points (see ``docs/backbone.md``):

1. ``token_stages``: modules (:class:`~vtseg.models.reducers.BaseTokenStage`)
   that run after a given block and may replace the token set; the record
   passed between blocks is a :class:`~vtseg.models.utils.TokenGrid`.
2. output restoration: a stage with ``after_block=None`` rebuilds the full
   (H, W) grid for every output level taken while tokens are reduced (or
   hands the level to the decode head as a
   :class:`~vtseg.models.utils.ClusteredFeatureMap` to rebuild there).
3. pruning masks: ``grid.keep`` (B, N) becomes a key mask inside attention,
   and pruned rows are zeroed after each block.
4. :meth:`ViT.forward_features` returns, besides the output maps, the tokens
   and the attention q / k / v of any requested block (TokenCut uses the
   last block's keys).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor

from vtseg.registry import MODELS
from ..utils import ClusteredFeatureMap, TokenGrid


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection; pads bottom/right to a multiple of
    the patch size with zeros (in normalised pixel space).

    Args:
        patch_size: patch side p in pixels.
        in_channels: input channels.
        embed_dims: output channels C.
    """

    def __init__(self, patch_size: int, in_channels: int, embed_dims: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dims, patch_size, patch_size)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """(B, 3, H_img, W_img) -> ((B, H*W, C), (H, W))."""
        p = self.patch_size
        h_img, w_img = x.shape[-2:]
        pad_h = (p - h_img % p) % p
        pad_w = (p - w_img % p) % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        return x.flatten(2).transpose(1, 2), hw


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embed_dims={dim} is not divisible by '
                             f'num_heads={num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, key_mask: Optional[Tensor] = None,
                return_qkv: bool = False):
        """
        Args:
            x: (B, T, C) tokens.
            key_mask: (B, T) bool, False for keys that must be ignored.
            return_qkv: also return (q, k, v), each (B, heads, T, C/heads),
                q unscaled.

        Returns:
            (B, T, C), or ((B, T, C), (q, k, v)).
        """
        B, T, C = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads,
                                  self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask,
            dropout_p=self.attn_drop if self.training else 0.0)
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(B, T, C)))
        if return_qkv:
            return out, (q, k, v)
        return out


class LayerScale(nn.Module):
    """Per-channel scaling of a residual branch (CaiT / DINOv2)."""

    def __init__(self, dim: int, init_value: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Mlp(nn.Module):

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block: x + LS(attn(LN(x))), x + LS(mlp(LN(x)))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0,
                 layer_scale: Optional[float] = None, norm_eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale else \
            nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else \
            nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale else \
            nn.Identity()

    def forward(self, x: Tensor, key_mask: Optional[Tensor] = None,
                return_qkv: bool = False):
        """(B, T, C) -> (B, T, C) [, (q, k, v)]."""
        attn = self.attn(self.norm1(x), key_mask, return_qkv)
        if return_qkv:
            attn, qkv = attn
        x = x + self.drop_path(self.ls1(attn))
        x = x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))
        return (x, qkv) if return_qkv else x


def init_transformer_weights(module: nn.Module) -> None:
    """timm / ViT initialisation: truncated-normal (std 0.02) linear weights,
    zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resize_pos_embed(pos_embed: Tensor, src_hw: Tuple[int, int],
                     dst_hw: Tuple[int, int], mode: str = 'bicubic',
                     antialias: bool = False) -> Tensor:
    """Resize a (1, Hs*Ws, C) patch position table to (1, Hd*Wd, C).

    Interpolation runs in fp32 with ``align_corners=False`` (the DINOv2 /
    HF / mmseg convention); same size returns the input unchanged.
    """
    if tuple(src_hw) == tuple(dst_hw):
        return pos_embed
    C = pos_embed.shape[-1]
    grid = pos_embed.reshape(1, src_hw[0], src_hw[1], C).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=tuple(dst_hw), mode=mode,
                         align_corners=False, antialias=antialias)
    return grid.to(pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, -1, C)


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
        token_stages: configs of token stages (extension point), see
            :mod:`vtseg.models.reducers.base`.
        frozen_blocks: freeze the embeddings and the first ``frozen_blocks``
            blocks (-1: nothing frozen; ``depth``: everything, final norm
            included). Frozen parts stay in eval mode.
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
                 token_stages: Optional[List[dict]] = None,
                 frozen_blocks: int = -1,
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
        self.blocks = nn.ModuleList([
            Block(embed_dims, num_heads, mlp_ratio, qkv_bias, drop_rate,
                  attn_drop_rate, dpr[i], layer_scale, norm_eps)
            for i in range(depth)
        ])
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps) if final_norm \
            else None

        self.token_stages = nn.ModuleList(
            [MODELS.build(cfg) for cfg in (token_stages or [])])
        self._stages_after: Dict[int, List[nn.Module]] = {}
        self.output_restorer = None
        for stage in self.token_stages:
            if stage.after_block is None:
                if self.output_restorer is not None:
                    raise ValueError('at most one token stage may have '
                                     'after_block=None (output restorer)')
                self.output_restorer = stage
                continue
            idx = self._resolve_indices(stage.after_block,
                                        f'{type(stage).__name__}.after_block')
            self._stages_after.setdefault(idx[0], []).append(stage)
        self.frozen_blocks = frozen_blocks
        self._freeze()

    # ------------------------------------------------------------ utilities
    def _resolve_indices(self, indices, name) -> List[int]:
        if isinstance(indices, int):
            indices = [indices]
        out = []
        for i in indices:
            j = i + self.depth if i < 0 else i
            if not 0 <= j < self.depth:
                raise ValueError(f'{name}: block index {i} is out of range '
                                 f'for depth {self.depth}')
            out.append(j)
        return out

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
            from vtseg.models.utils.checkpoint import load_pretrained_strict
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

    def _key_mask(self, grid: TokenGrid) -> Optional[Tensor]:
        if grid.keep is None:
            return None
        prefix = grid.keep.new_ones(grid.keep.shape[0], grid.n_prefix)
        return torch.cat([prefix, grid.keep], dim=1)

    def _output_map(self, grid: TokenGrid, block_idx: int) -> Tensor:
        """Output level of block ``block_idx`` as (B, C, H, W) (or a
        :class:`ClusteredFeatureMap` of that shape, see token stages)."""
        x = grid.x
        if self.norm is not None and (self.norm_outputs == 'all'
                                      or block_idx == self.depth - 1):
            x = self.norm(x)
        hw = grid.hw
        if grid.is_reduced or grid.restore is not None:
            if self.output_restorer is not None:
                x = self.output_restorer.restore(grid, x)
                if isinstance(x, ClusteredFeatureMap):
                    return x  # rebuilt by the decode head
            elif grid.reduced_hw is not None:
                hw = grid.reduced_hw
            else:
                raise RuntimeError(
                    f'output of block {block_idx} is requested while the '
                    'token set is reduced, but no output restorer '
                    '(token stage with after_block=None) is configured and '
                    'the reduced tokens form no regular grid')
        patches = x[:, grid.n_prefix:]
        B, N, C = patches.shape
        if N != hw[0] * hw[1]:
            raise RuntimeError(f'cannot view {N} tokens as a {hw} grid')
        return patches.transpose(1, 2).reshape(B, C, hw[0], hw[1])

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
            ``qkv`` ({block: (q, k, v)}, each (B, heads, T, C/heads)),
            ``tokens`` ({block: (B, T, C)}), ``hw`` ((H, W) patch grid),
            ``n_prefix`` and ``grid`` (the final TokenGrid).
        """
        outs_idx = self.out_indices if out_indices is None else \
            self._resolve_indices(list(out_indices), 'out_indices')
        qkv_idx = set(self._resolve_indices(list(qkv_layers), 'qkv_layers'))
        tok_idx = set(self._resolve_indices(list(token_layers),
                                            'token_layers'))
        last = max(list(outs_idx) + list(qkv_idx) + list(tok_idx) + [-1])
        if out_indices is None:
            last = self.depth - 1
        grid = self.embed(inputs)
        hw = grid.hw
        outs, qkvs, tokens = {}, {}, {}
        for i, blk in enumerate(self.blocks):
            if i > last:
                break
            key_mask = self._key_mask(grid)
            res = blk(grid.x, key_mask, return_qkv=i in qkv_idx)
            if i in qkv_idx:
                res, qkvs[i] = res
            if key_mask is not None:  # pruned rows stay zero
                res = res * key_mask[..., None].to(res.dtype)
            grid.x = res
            if i in tok_idx:
                tokens[i] = grid.x
            # The output of block i is taken before the stages that run
            # after block i (a level taken before clustering is unchanged).
            if i in outs_idx:
                outs[i] = self._output_map(grid, i)
            for stage in self._stages_after.get(i, ()):
                grid = stage(grid)
        return dict(outs=[outs[i] for i in outs_idx], qkv=qkvs,
                    tokens=tokens, hw=hw, n_prefix=self.n_prefix, grid=grid)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H_img, W_img) -> tuple of (B, C, H, W) maps, one per
        ``out_indices`` entry (mmseg backbone contract)."""
        return tuple(self.forward_features(inputs)['outs'])
