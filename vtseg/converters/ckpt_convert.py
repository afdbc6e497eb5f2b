"""Convert plain-ViT checkpoints of other code bases to the vtseg ``ViT``.

One function per source, each taking the loaded checkpoint (a state dict or
the training checkpoint that wraps it) and returning a :class:`Converted`
record: the vtseg state dict plus the ``ViT`` config inferred from the
weights. The CLIs in ``tools/model_converters/`` and the tests share them.

* :func:`convert_timm_vit`  timm ``vision_transformer.py`` / DeiT (``vit_*``,
  ``deit_*``, distilled DeiT, ``reg`` variants, ``no_embed_class``);
* :func:`convert_dino_vit`  facebookresearch/dino backbones and full
  teacher / student training checkpoints;
* :func:`convert_dinov2_vit`  facebookresearch/dinov2 hub checkpoints
  (``dinov2_vit{s,b,l}14[_reg4]_pretrain.pth``), ``BlockChunk`` layouts and
  teacher checkpoints;
* :func:`convert_mmseg_vit`  ``mmseg.models.backbones.VisionTransformer``
  backbones and full mmseg segmentor checkpoints;
* :func:`convert_segmenter`  official rstrudel/segmenter ``checkpoint.pth``
  (encoder -> ``backbone.*``, mask transformer -> ``decode_head.*``);
* :func:`convert_vitdet_vit`  ViTDet backbones (detectron2 / mmdet
  ``projects/ViTDet``) with windowed attention and relative position tables
  (resized to the target window / grid); :func:`convert_vtseg_to_vitdet` is
  the inverse.

Exact re-expressions (no numerical change):

* extra prefix tokens that share the position table (DeiT ``dist_token``,
  timm ``reg_token`` without ``no_embed_class``) become vtseg register tokens
  with their position entry added in: the token and its position entry are
  both constants, so ``token + pos`` is the same input to block 0;
* a missing patch-embedding bias (mmseg ``patch_bias=False``) becomes zeros.

Everything the vtseg ViT cannot express (pre-norm, qk-norm, SwiGLU, patch
norm, unknown keys) raises :class:`CheckpointConversionError` naming the key.
Classifier / SSL-head keys are dropped with a log line. The number of heads
is not stored in the weights: pass it, or the standard width -> heads table
(:data:`HEADS_BY_WIDTH`) is used. ``norm_eps`` is not stored either; each
source has its own default (documented per function).

Key layouts and caveats: ``docs/model_converters.md``.
"""
import argparse
import math
import os
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import (Callable, Dict, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple, Union)

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

from vtseg.compat import UnsafeCheckpointError, safe_torch_load
from vtseg.models.backbones.vit import ViT
from vtseg.models.layers import resize_rel_pos
from vtseg.models.utils.checkpoint import CheckpointMismatchError

__all__ = [
    'CheckpointConversionError', 'Converted', 'HEADS_BY_WIDTH',
    'convert_timm_vit', 'convert_dino_vit', 'convert_dinov2_vit',
    'convert_mmseg_vit', 'convert_segmenter', 'convert_vitdet_vit',
    'convert_vtseg_to_vitdet', 'ViTDetExport', 'VITDET_LAYOUTS',
    'CONVERTERS', 'convert_file', 'convert_file_to_vitdet',
    'load_source_checkpoint', 'cli_main'
]


class CheckpointConversionError(CheckpointMismatchError):
    """A source checkpoint cannot be converted (unknown architecture or key,
    missing key, wrong shape); the message names the source key."""


class Converted(NamedTuple):
    """Result of a conversion.

    Attributes:
        state_dict: vtseg tensors (OrderedDict name -> Tensor).
        backbone_cfg: ``ViT`` kwargs inferred from the weights (with
            ``type='ViT'``): build the backbone with them and load strictly.
        decode_head_info: shape facts of a converted decode head (Segmenter
            mask transformer / linear decoder), else None.
        dropped: source keys not carried over (classifier / SSL heads ...).
        notes: human-readable remarks (re-expressions, assumptions).
        backbone_prefix: prefix of the backbone keys in ``state_dict``.
    """
    state_dict: 'OrderedDict[str, Tensor]'
    backbone_cfg: dict
    decode_head_info: Optional[dict]
    dropped: List[str]
    notes: List[str]
    backbone_prefix: str = ''


#: Standard ViT widths -> heads (head dim 64, except ViT-H/g/G: 16 heads).
HEADS_BY_WIDTH = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16,
                  1536: 24, 1664: 16}

# vtseg block parameter names (suffix after ``blocks.{i}.``).
_VT_BLOCK_KEYS = (
    'norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.qkv.bias',
    'attn.proj.weight', 'attn.proj.bias', 'ls1.gamma', 'norm2.weight',
    'norm2.bias', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight',
    'mlp.fc2.bias', 'ls2.gamma')
_TIMM_BLOCK_MAP = {k: k for k in _VT_BLOCK_KEYS}
_TIMM_TOP_MAP = {k: k for k in (
    'cls_token', 'pos_embed', 'patch_embed.proj.weight',
    'patch_embed.proj.bias', 'norm.weight', 'norm.bias')}

_MMSEG_BLOCK_MAP = {
    'ln1.weight': 'norm1.weight',
    'ln1.bias': 'norm1.bias',
    'attn.attn.in_proj_weight': 'attn.qkv.weight',
    'attn.attn.in_proj_bias': 'attn.qkv.bias',
    'attn.attn.out_proj.weight': 'attn.proj.weight',
    'attn.attn.out_proj.bias': 'attn.proj.bias',
    'ln2.weight': 'norm2.weight',
    'ln2.bias': 'norm2.bias',
    'ffn.layers.0.0.weight': 'mlp.fc1.weight',
    'ffn.layers.0.0.bias': 'mlp.fc1.bias',
    'ffn.layers.1.weight': 'mlp.fc2.weight',
    'ffn.layers.1.bias': 'mlp.fc2.bias',
}
_MMSEG_TOP_MAP = {
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'patch_embed.projection.weight': 'patch_embed.proj.weight',
    'patch_embed.projection.bias': 'patch_embed.proj.bias',
    'ln1.weight': 'norm.weight',
    'ln1.bias': 'norm.bias',
}

# Parts of timm-family models that the vtseg ViT does not have.
_TIMM_REFUSE = [
    (r'(^|\.)norm_pre\.',
     'pre-norm before the blocks (CLIP-style pre_norm=True)'),
    (r'(^|\.)patch_embed\.norm\.', 'a norm inside the patch embedding'),
    (r'\.attn\.[qk]_norm\.', 'qk-norm in attention (qk_norm=True)'),
    (r'\.attn\.norm\.', 'a norm inside attention (scale_attn_norm=True)'),
    (r'\.attn\.gate\.', 'gated attention'),
    (r'\.mlp\.norm\.', 'a norm inside the MLP (scale_mlp_norm=True)'),
    (r'\.mlp\.(w12|w3|w1|w2|fc1_g|fc1_x)\.',
     'a SwiGLU / GLU MLP (e.g. DINOv2 ViT-g/14); the vtseg ViT MLP is '
     'fc1 -> GELU -> fc2'),
]
_MMSEG_REFUSE = [
    (r'(^|\.)ln_pre\.', 'pre-norm before the layers (pre_norm=True)'),
    (r'(^|\.)patch_embed\.norm\.', 'a norm inside the patch embedding '
     '(patch_norm=True)'),
    (r'\.ffn\.gamma2\.', 'FFN layer scale'),
]


def _fmt_keys(keys: Sequence[str], limit: int = 8) -> str:
    keys = list(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f' ... (+{len(keys) - limit} more)'
                    if len(keys) > limit else '')


def _shape(t) -> tuple:
    return tuple(int(s) for s in t.shape)


# ------------------------------------------------------------ unwrapping
def _unwrap(ckpt, wrapper_keys: Sequence[str], source: str) -> dict:
    """The tensor dict inside a training checkpoint (first of
    ``wrapper_keys`` that holds a dict), else the checkpoint itself."""
    if not isinstance(ckpt, Mapping):
        raise CheckpointConversionError(
            f'{source}: expected a dict (state dict or training checkpoint), '
            f'got {type(ckpt).__name__}')
    for key in wrapper_keys:
        if key in ckpt and isinstance(ckpt[key], Mapping):
            return dict(ckpt[key])
    return dict(ckpt)


def _common(sd: Mapping, prefix: str) -> str:
    """``prefix`` when every key has it (DDP ``module.``), else ''."""
    return prefix if sd and all(k.startswith(prefix) for k in sd) else ''


def _check_tensors(sd: Mapping, source: str) -> None:
    if not sd:
        raise CheckpointConversionError(f'{source}: the state dict is empty')
    bad = [k for k, v in sd.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointConversionError(
            f'{source}: expected tensors, but these entries are not: '
            f'{_fmt_keys([repr(k) for k in bad])} (is this a training '
            'checkpoint whose state dict sits under another key?)')


def _guess_format(keys: Sequence[str]) -> Optional[str]:
    """A hint for a checkpoint given to the wrong converter."""
    keys = list(keys)
    has = lambda pat: any(re.search(pat, k) for k in keys)  # noqa: E731
    if has(r'(^|\.)blocks\.\d+\.attn\.rel_pos_[hw]$') or \
            has(r'(^|\.)backbone\.net\.blocks\.'):
        return 'ViTDet (vitdet2vtseg.py)'
    if has(r'^(encoder|decoder)\.'):
        return 'Segmenter (segmenter2vtseg.py)'
    if has(r'(^|\.)layers\.\d+\.attn\.attn\.in_proj_weight'):
        return 'mmseg VisionTransformer (mmseg2vtseg.py)'
    if has(r'^(teacher|student)$') or has(r'^(module\.)?backbone\.'):
        return 'a DINO / DINOv2 training checkpoint (dino2vtseg.py / ' \
            'dinov2_2vtseg.py)'
    if has(r'^register_tokens$') or has(r'^mask_token$'):
        return 'DINOv2 (dinov2_2vtseg.py)'
    if has(r'^blocks\.\d+\.attn\.qkv\.weight$'):
        return 'a timm-layout ViT (timm2vtseg.py / dino2vtseg.py)'
    if has(r'layers\.\d+\.blocks\.\d+\.') or has(r'relative_position'):
        return 'a hierarchical / relative-position transformer (Swin, ' \
            'BEiT ...), which the plain vtseg ViT cannot represent'
    return None


# ------------------------------------------------------------ renaming
class _Renamed(NamedTuple):
    tensors: Dict[str, Tensor]   # vtseg name -> tensor
    src_names: Dict[str, str]    # vtseg name -> source key
    tokens: Dict[str, Tensor]    # token role (dist/reg) -> tensor
    token_src: Dict[str, str]
    dropped: List[Tuple[str, str]]  # (source key, reason)


def _rename(sd: Mapping[str, Tensor], *, source: str,
            block_re: str, block_map: Mapping[str, str],
            top_map: Mapping[str, str], token_keys: Mapping[str, str],
            drop_rules: Sequence[Tuple[str, str]],
            refuse_rules: Sequence[Tuple[str, str]],
            key_prefix: str = '') -> _Renamed:
    """Map source keys to vtseg names; refuse what the ViT cannot hold.

    Rules and tables apply to the key without ``key_prefix`` (e.g.
    ``module.backbone.``, ``encoder.``); records and messages keep the full
    source key.

    Args:
        block_re: regex with groups (block index, suffix) for block keys.
        block_map / top_map: source -> vtseg names.
        token_keys: source key -> token role ('dist', 'reg').
        drop_rules: (regex, reason) for keys that are dropped with a log.
        refuse_rules: (regex, reason) for keys that make the checkpoint
            unconvertible.
    """
    out = _Renamed({}, {}, {}, {}, [])
    unknown = []
    for key, val in sd.items():
        if not key.startswith(key_prefix):
            unknown.append(key)
            continue
        inner = key[len(key_prefix):]
        for pat, why in refuse_rules:
            if re.search(pat, inner):
                raise CheckpointConversionError(
                    f'{source}: key {key!r} {_shape(val)} belongs to {why}, '
                    'which the vtseg ViT does not implement; refusing to '
                    'convert')
        dropped = next((why for pat, why in drop_rules
                        if re.search(pat, inner)), None)
        if dropped is not None:
            out.dropped.append((key, dropped))
            continue
        if inner in token_keys:
            out.tokens[token_keys[inner]] = val
            out.token_src[token_keys[inner]] = key
            continue
        if inner in top_map:
            name = top_map[inner]
        else:
            m = re.match(block_re, inner)
            if m is None or m.group(2) not in block_map:
                unknown.append(key)
                continue
            name = f'blocks.{int(m.group(1))}.{block_map[m.group(2)]}'
        if name in out.tensors:
            raise CheckpointConversionError(
                f'{source}: keys {out.src_names[name]!r} and {key!r} both '
                f'map to {name!r}')
        out.tensors[name] = val
        out.src_names[name] = key
    if unknown:
        hint = _guess_format(sd.keys())
        raise CheckpointConversionError(
            f'{source}: {len(unknown)} key(s) have no place in the vtseg ViT:'
            f' {_fmt_keys(unknown)}' +
            (f'. The checkpoint looks like {hint}.' if hint else ''))
    return out


# ------------------------------------------------------------ assembly
def _expected_shapes(cfg: dict) -> Dict[str, tuple]:
    """Parameter shapes of ``ViT(**cfg)``, from a one-block instance
    (blocks 1.. repeat block 0), so huge models cost one block."""
    kwargs = {k: v for k, v in cfg.items() if k != 'type'}
    depth = kwargs.pop('depth')
    one = ViT(depth=1, **kwargs)
    shapes = {}
    for name, t in one.state_dict().items():
        if name.startswith('blocks.0.'):
            suffix = name[len('blocks.0.'):]
            for i in range(depth):
                shapes[f'blocks.{i}.{suffix}'] = _shape(t)
        else:
            shapes[name] = _shape(t)
    return shapes


def _is_square(n: int) -> bool:
    r = math.isqrt(n)
    return r * r == n


def _assemble_vit(r: _Renamed, *, source: str, token_order: Sequence[str],
                  tokens_in_pos: bool, num_heads: Optional[int],
                  pos_hw: Optional[Sequence[int]], norm_eps: float,
                  src_name_of: Callable[[str], str],
                  zero_patch_bias: bool = False,
                  drop_cls: bool = False,
                  require_cls: bool = True,
                  patch_only_table: bool = False
                  ) -> Tuple[OrderedDict, dict, List[str]]:
    """Build the vtseg ViT state dict and config from renamed tensors.

    Args:
        token_order: roles of extra prefix tokens in source order after cls
            (e.g. ``['dist']``, ``['reg']``).
        tokens_in_pos: the extra tokens have position entries when the
            table has prefix entries (timm / DeiT); False when they are
            inserted after the position embedding (DINOv2 registers).
        src_name_of: vtseg name -> expected source key (for messages).
        zero_patch_bias: a missing patch-embedding bias becomes zeros.
        drop_cls: the source model drops the cls token after the position
            embedding (mmseg ``with_cls_token=False``).
        require_cls: the source always has a cls token.
        patch_only_table: the position table may lack prefix entries
            (timm ``no_embed_class``); with prefix tokens this is ambiguous
            when both readings give a square grid, and the prefix reading
            wins (pass ``pos_hw`` to decide).

    Returns:
        (state dict, ViT config, notes).
    """
    t, notes = dict(r.tensors), []

    def need(name):
        if name not in t:
            raise CheckpointConversionError(
                f'{source}: missing key {src_name_of(name)!r} (vtseg '
                f'{name!r}); cannot build the ViT without it')
        return t[name]

    # --- patch embedding: width, patch size, input channels
    w = need('patch_embed.proj.weight')
    if w.dim() != 4 or w.shape[2] != w.shape[3]:
        raise CheckpointConversionError(
            f'{source}: {src_name_of("patch_embed.proj.weight")!r} has shape '
            f'{_shape(w)}; expected (C, in_channels, p, p) of a square '
            'patch convolution')
    C, in_ch, p = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])
    if 'patch_embed.proj.bias' not in t and zero_patch_bias:
        t['patch_embed.proj.bias'] = w.new_zeros(C)
        notes.append(f'{src_name_of("patch_embed.proj.bias")} is absent '
                     '(bias-free patch embedding): stored as zeros')

    # --- blocks
    idx = sorted({int(k.split('.')[1]) for k in t if k.startswith('blocks.')})
    if not idx:
        raise CheckpointConversionError(
            f'{source}: no transformer block keys found (expected e.g. '
            f'{src_name_of("blocks.0.attn.qkv.weight")!r})')
    depth = idx[-1] + 1
    missing_blocks = sorted(set(range(depth)) - set(idx))
    if missing_blocks:
        raise CheckpointConversionError(
            f'{source}: blocks {missing_blocks} have no keys (found blocks '
            f'up to {depth - 1}); e.g. '
            f'{src_name_of(f"blocks.{missing_blocks[0]}.attn.qkv.weight")!r}'
            ' is missing')
    fc1 = need('blocks.0.mlp.fc1.weight')
    hidden = int(fc1.shape[0])
    mlp_ratio = hidden / C
    if int(C * mlp_ratio) != hidden:
        # ViT builds int(C * mlp_ratio) units; aim half a unit up so that
        # float rounding cannot land one below (e.g. ViT-g 1408 -> 6144).
        mlp_ratio = (hidden + 0.5) / C
    if int(C * mlp_ratio) != hidden:
        raise CheckpointConversionError(
            f'{source}: MLP width {hidden} of '
            f'{src_name_of("blocks.0.mlp.fc1.weight")!r} cannot be written '
            f'as int(embed_dims * mlp_ratio) for embed_dims={C}')
    qkv_bias = 'blocks.0.attn.qkv.bias' in t
    layer_scale = 1.0 if 'blocks.0.ls1.gamma' in t else None
    final_norm = 'norm.weight' in t or 'norm.bias' in t
    if num_heads is None:
        if C not in HEADS_BY_WIDTH:
            raise CheckpointConversionError(
                f'{source}: embed_dims={C} is not a standard ViT width '
                f'({sorted(HEADS_BY_WIDTH)}); pass num_heads (--num-heads) '
                'explicitly: the head count is not stored in the weights')
        num_heads = HEADS_BY_WIDTH[C]
        notes.append(f'num_heads={num_heads} from the standard table for '
                     f'embed_dims={C} (not stored in the weights)')
    if C % num_heads:
        raise CheckpointConversionError(
            f'{source}: embed_dims={C} is not divisible by num_heads='
            f'{num_heads}')

    # --- prefix tokens and the position table
    if require_cls:
        need('cls_token')
    has_cls = 'cls_token' in t
    extras = [(role, r.tokens[role]) for role in token_order
              if role in r.tokens]
    n_extra = sum(int(v.shape[1]) for _, v in extras if v.dim() == 3)
    for role, v in extras:
        if v.dim() != 3 or v.shape[0] != 1 or v.shape[2] != C:
            raise CheckpointConversionError(
                f'{source}: {r.token_src[role]!r} has shape {_shape(v)}; '
                f'expected (1, n, {C})')
    if has_cls and _shape(t['cls_token']) != (1, 1, C):
        raise CheckpointConversionError(
            f'{source}: {src_name_of("cls_token")!r} has shape '
            f'{_shape(t["cls_token"])}; expected (1, 1, {C})')
    pos = need('pos_embed')
    if pos.dim() != 3 or pos.shape[0] != 1 or pos.shape[2] != C:
        raise CheckpointConversionError(
            f'{source}: {src_name_of("pos_embed")!r} has shape {_shape(pos)};'
            f' expected (1, L, {C})')
    L = int(pos.shape[1])
    n_pos_prefix = int(has_cls) + (n_extra if tokens_in_pos else 0)
    candidates = [n_pos_prefix] + (
        [0] if n_pos_prefix and patch_only_table else [])
    k = None
    for cand in candidates:
        n = L - cand
        if n <= 0:
            continue
        if pos_hw is not None:
            if n == pos_hw[0] * pos_hw[1]:
                k = cand
                break
        elif _is_square(n):
            k = cand
            break
    if k is None:
        want = (f'{tuple(pos_hw)} = {pos_hw[0] * pos_hw[1]}'
                if pos_hw is not None else 'a square number of')
        raise CheckpointConversionError(
            f'{source}: {src_name_of("pos_embed")!r} has {L} entries; '
            f'expected {want} patch entries plus ' +
            ' or '.join(str(c) for c in candidates) +
            ' prefix entries. Pass pos_hw (--pos-hw H W) for a non-square '
            'table')
    n_patch = L - k
    hw = tuple(pos_hw) if pos_hw is not None else (math.isqrt(n_patch),) * 2
    patch_pos = pos[:, k:]
    extra_tok = [v for _, v in extras]
    if drop_cls:
        if not has_cls or k != 1 or extra_tok:
            raise CheckpointConversionError(
                f'{source}: with_cls_token=False expects a cls token with one '
                'position entry and no other prefix tokens')
        # mmseg adds the cls position entry, then discards the cls token.
        del t['cls_token']
        has_cls, k = False, 0
        notes.append('cls token dropped (the source model removes it after '
                     'the position embedding)')
    elif k:
        off = 0
        if has_cls:
            off = 1
        if extra_tok and tokens_in_pos:
            extra_pos = pos[:, off:k]
            extra_tok = [torch.cat(extra_tok, dim=1) + extra_pos]
            notes.append(
                'extra prefix tokens ' +
                ', '.join(r.token_src[role] for role, _ in extras) +
                ' became register tokens with their position entries added '
                'in (exact)')
        if has_cls:
            patch_pos = torch.cat([pos[:, :1], patch_pos], dim=1)
    pos_embed_with_cls = bool(has_cls and k)
    t['pos_embed'] = patch_pos.contiguous()
    n_reg = 0
    if extra_tok:
        reg = torch.cat(extra_tok, dim=1).contiguous()
        n_reg = int(reg.shape[1])
        t['reg_token'] = reg
        for role, _ in extras:
            r.src_names.setdefault('reg_token', r.token_src[role])
    img_size = (hw[0] * p, hw[1] * p)
    cfg = dict(type='ViT',
               img_size=img_size[0] if img_size[0] == img_size[1] else
               img_size,
               patch_size=p, in_channels=in_ch, embed_dims=C, depth=depth,
               num_heads=int(num_heads), mlp_ratio=mlp_ratio,
               qkv_bias=qkv_bias, with_cls_token=has_cls,
               num_register_tokens=n_reg,
               pos_embed_with_cls=pos_embed_with_cls,
               layer_scale=layer_scale, final_norm=final_norm,
               norm_eps=norm_eps)

    # --- every tensor must fit ViT(**cfg) exactly
    expected = _expected_shapes(cfg)
    missing = [k_ for k_ in expected if k_ not in t]
    if missing:
        raise CheckpointConversionError(
            f'{source}: missing keys ' +
            _fmt_keys([f'{src_name_of(k_)!r}' for k_ in missing]) +
            f' (vtseg {_fmt_keys(missing, 3)}) for the inferred config '
            f'(depth={depth}, qkv_bias={qkv_bias}, layer_scale='
            f'{layer_scale is not None}, final_norm={final_norm})')
    extra = [k_ for k_ in t if k_ not in expected]
    if extra:
        raise CheckpointConversionError(
            f'{source}: keys ' +
            _fmt_keys([repr(r.src_names.get(k_, k_)) for k_ in extra]) +
            ' do not fit the inferred ViT config (a block has parameters '
            'that block 0 lacks: mixed qkv bias / layer scale?)')
    for k_, shp in expected.items():
        if _shape(t[k_]) != shp:
            raise CheckpointConversionError(
                f'{source}: {r.src_names.get(k_, src_name_of(k_))!r} has '
                f'shape {_shape(t[k_])}, expected {shp} (vtseg {k_!r}; '
                f'embed_dims={C}, mlp hidden={hidden}, grid={hw})')
    sd = OrderedDict((k_, t[k_]) for k_ in expected)
    return sd, cfg, notes


def _log_dropped(source: str, dropped: Sequence[Tuple[str, str]]) -> None:
    by_reason: Dict[str, List[str]] = {}
    for key, why in dropped:
        by_reason.setdefault(why, []).append(key)
    for why, keys in by_reason.items():
        print_log(f'{source}: dropped {len(keys)} key(s) ({why}): '
                  f'{_fmt_keys(keys, 6)}', logger='current')


def _finish(source: str, sd: OrderedDict, cfg: dict, notes: List[str],
            dropped: Sequence[Tuple[str, str]], prefix: str,
            others: Optional[Mapping[str, Tensor]] = None,
            head_info: Optional[dict] = None) -> Converted:
    _log_dropped(source, dropped)
    for note in notes:
        print_log(f'{source}: {note}', logger='current')
    out = OrderedDict((prefix + k, v) for k, v in sd.items())
    for k, v in (others or {}).items():
        if k in out:
            raise CheckpointConversionError(
                f'{source}: converted key {k!r} collides with a backbone key')
        out[k] = v
    return Converted(out, cfg, head_info, [k for k, _ in dropped],
                     list(notes), prefix)


def _timm_src_name(block_fmt: str = 'blocks.{i}.{s}',
                   block_map: Optional[Mapping[str, str]] = None,
                   top_map: Optional[Mapping[str, str]] = None,
                   prefix: str = '') -> Callable[[str], str]:
    """vtseg name -> source key, by inverting the rename tables."""
    inv_block = {v: k for k, v in (block_map or _TIMM_BLOCK_MAP).items()}
    inv_top = {v: k for k, v in (top_map or _TIMM_TOP_MAP).items()}

    def name(vt: str) -> str:
        m = re.match(r'^blocks\.(\d+)\.(.+)$', vt)
        if m:
            s = inv_block.get(m.group(2), m.group(2))
            return prefix + block_fmt.format(i=m.group(1), s=s)
        return prefix + inv_top.get(vt, vt)

    return name


# ------------------------------------------------------------ converters
_TIMM_DROP = [
    (r'^head(_dist)?\.', 'classifier head'),
    (r'^fc_norm\.', 'classifier pooling norm'),
    (r'^pre_logits\.', 'classifier pre-logits layer'),
    (r'^attn_pool\.', 'attention-pooling classifier head'),
]
_BLOCK_RE = r'^blocks\.(\d+)\.(.+)$'


def convert_timm_vit(checkpoint: Mapping, num_heads: Optional[int] = None,
                     pos_hw: Optional[Sequence[int]] = None,
                     norm_eps: float = 1e-6, prefix: str = '',
                     source: str = 'timm') -> Converted:
    """timm ``VisionTransformer`` / DeiT weights -> vtseg ViT.

    Accepts a state dict or a checkpoint wrapping it under ``state_dict`` /
    ``model`` (DeiT releases); a DDP ``module.`` prefix is allowed.
    ``dist_token`` (distilled DeiT) and ``reg_token`` become vtseg register
    tokens (their position entries, if any, added in: the same sum the
    source computes at run time). ``head``, ``head_dist``, ``fc_norm``,
    ``pre_logits``, ``attn_pool`` are dropped. ``no_embed_class`` tables
    (no prefix entries) map to ``pos_embed_with_cls=False``.

    Args:
        checkpoint: loaded checkpoint.
        num_heads: attention heads (default: :data:`HEADS_BY_WIDTH`).
        pos_hw: (H, W) of a non-square position table.
        norm_eps: LayerNorm eps (timm / DeiT: 1e-6).
        prefix: prepended to every output key (e.g. ``'backbone.'``).
    """
    sd = _unwrap(checkpoint, ('state_dict', 'model'), source)
    _check_tensors(sd, source)
    pre = _common(sd, 'module.')
    r = _rename(sd, source=source, block_re=_BLOCK_RE,
                block_map=_TIMM_BLOCK_MAP, top_map=_TIMM_TOP_MAP,
                token_keys={'dist_token': 'dist', 'reg_token': 'reg'},
                drop_rules=_TIMM_DROP, refuse_rules=_TIMM_REFUSE,
                key_prefix=pre)
    vt, cfg, notes = _assemble_vit(
        r, source=source, token_order=('dist', 'reg'), tokens_in_pos=True,
        num_heads=num_heads, pos_hw=pos_hw, norm_eps=norm_eps,
        src_name_of=_timm_src_name(prefix=pre), require_cls=False,
        patch_only_table=True)
    return _finish(source, vt, cfg, notes, r.dropped, prefix)


def _select_ssl_backbone(ckpt: Mapping, which: str, source: str
                         ) -> Tuple[dict, str, List[Tuple[str, str]],
                                    List[str]]:
    """The backbone tensors of a DINO / DINOv2 checkpoint.

    Handles plain backbone state dicts, ``{'teacher': ..., 'student': ...}``
    training checkpoints (``module.`` and ``backbone.`` prefixes, SSL heads
    dropped) and DINOv2 ``{'model': {'teacher.backbone.*': ...}}``.

    Returns:
        (backbone tensors under their source keys, the key prefix shared by
        them, dropped (key, reason) pairs, notes).
    """
    if which not in ('teacher', 'student'):
        raise ValueError(f"which must be 'teacher' or 'student', got "
                         f'{which!r}')
    if not isinstance(ckpt, Mapping):
        raise CheckpointConversionError(
            f'{source}: expected a dict, got {type(ckpt).__name__}')
    notes, dropped = [], []
    if which in ckpt and isinstance(ckpt[which], Mapping):
        sd = dict(ckpt[which])
        notes.append(f'took the {which!r} weights of a training checkpoint '
                     f'(keys below are inside checkpoint[{which!r}])')
    elif any(isinstance(ckpt.get(k), Mapping) for k in ('teacher',
                                                        'student')):
        raise CheckpointConversionError(
            f'{source}: the checkpoint has no {which!r} dict (keys: '
            f'{_fmt_keys(sorted(ckpt))})')
    else:
        sd = _unwrap(ckpt, ('model', 'state_dict'), source)
    _check_tensors(sd, source)
    pre = _common(sd, 'module.')
    if any(k.startswith(f'{pre}{which}.backbone.') for k in sd):
        # DINOv2 SSLMetaArch state: student.* and teacher.* side by side
        notes.append(f'took the {which!r} network of a training checkpoint')
        sd = {k: v for k, v in sd.items()
              if k.startswith(f'{pre}{which}.')}
        pre = f'{pre}{which}.'
    if any(k.startswith(pre + 'backbone.') for k in sd):
        dropped = [(k, 'self-supervised projection head') for k in sd
                   if not k.startswith(pre + 'backbone.')]
        pre = pre + 'backbone.'
        sd = {k: v for k, v in sd.items() if k.startswith(pre)}
    return sd, pre, dropped, notes


def convert_dino_vit(checkpoint: Mapping, which: str = 'teacher',
                     num_heads: Optional[int] = None,
                     pos_hw: Optional[Sequence[int]] = None,
                     norm_eps: float = 1e-6, prefix: str = '',
                     source: str = 'dino') -> Converted:
    """facebookresearch/dino ViT -> vtseg ViT.

    Accepts the released backbones (``dino_deitsmall16_pretrain.pth``,
    ``dino_vitbase8_pretrain.pth`` ...: ``cls_token``, ``pos_embed``
    (1, 1 + 14*14 or 28*28, C), ``patch_embed.proj``, ``blocks.{i}``,
    ``norm``) and the full training checkpoints (``teacher`` / ``student``
    dicts with ``module.`` / ``backbone.`` prefixes; the DINO ``head.*`` is
    dropped). ``which`` picks the teacher (default, the evaluated network) or
    the student. DINO LayerNorm eps is 1e-6.
    """
    sd, pre, dropped, notes = _select_ssl_backbone(checkpoint, which, source)
    r = _rename(sd, source=source, block_re=_BLOCK_RE,
                block_map=_TIMM_BLOCK_MAP, top_map=_TIMM_TOP_MAP,
                token_keys={}, drop_rules=[(r'^head\.', 'classifier head')],
                refuse_rules=_TIMM_REFUSE, key_prefix=pre)
    vt, cfg, n2 = _assemble_vit(
        r, source=source, token_order=(), tokens_in_pos=True,
        num_heads=num_heads, pos_hw=pos_hw, norm_eps=norm_eps,
        src_name_of=_timm_src_name(prefix=pre))
    return _finish(source, vt, cfg, notes + n2, dropped + r.dropped, prefix)


def convert_dinov2_vit(checkpoint: Mapping, which: str = 'teacher',
                       num_heads: Optional[int] = None,
                       pos_hw: Optional[Sequence[int]] = None,
                       norm_eps: float = 1e-6, prefix: str = '',
                       source: str = 'dinov2') -> Converted:
    """facebookresearch/dinov2 ``DinoVisionTransformer`` -> vtseg ViT.

    Hub checkpoints ``dinov2_vit{s,b,l}14[_reg4]_pretrain.pth``:
    ``cls_token``, ``pos_embed`` (1, 1 + 37*37, C), ``register_tokens``
    (1, R, C; inserted after cls *after* the position embedding, as vtseg
    does), ``mask_token`` (dropped: only used for iBOT masking),
    ``blocks.{i}`` with ``ls1.gamma`` / ``ls2.gamma``, ``norm``. The
    ``BlockChunk`` layout ``blocks.{chunk}.{i}.`` (FSDP training) is
    flattened to ``blocks.{i}.``; teacher checkpoints (``backbone.*`` with
    ``dino_head`` / ``ibot_head``) are handled as for DINO. The SwiGLU MLP
    of ViT-g/14 (``mlp.w12`` / ``mlp.w3``) is refused. LayerNorm eps 1e-6.

    The position table is resized by vtseg with ``F.interpolate(size=...)``;
    DINOv2 uses a scale factor with a 0.1 offset (or antialiasing for the
    ``reg`` models), so non-native input sizes differ slightly.
    """
    sd, pre, dropped, notes = _select_ssl_backbone(checkpoint, which, source)
    if any(re.match(re.escape(pre) + r'blocks\.\d+\.\d+\.', k) for k in sd):
        notes.append('BlockChunk layout blocks.{chunk}.{i}. flattened to '
                     'blocks.{i}.')
    drop = [(r'^head\.', 'classifier head'),
            (r'^mask_token$', 'iBOT mask token (training only)')]
    r = _rename(sd, source=source,
                block_re=r'^blocks\.(?:\d+\.)?(\d+)\.(.+)$',
                block_map=_TIMM_BLOCK_MAP, top_map=_TIMM_TOP_MAP,
                token_keys={'register_tokens': 'reg'}, drop_rules=drop,
                refuse_rules=_TIMM_REFUSE, key_prefix=pre)
    vt, cfg, n2 = _assemble_vit(
        r, source=source, token_order=('reg',), tokens_in_pos=False,
        num_heads=num_heads, pos_hw=pos_hw, norm_eps=norm_eps,
        src_name_of=_timm_src_name(prefix=pre))
    return _finish(source, vt, cfg, notes + n2, dropped + r.dropped, prefix)


def convert_mmseg_vit(checkpoint: Mapping, num_heads: Optional[int] = None,
                      pos_hw: Optional[Sequence[int]] = None,
                      norm_eps: float = 1e-6, with_cls_token: bool = True,
                      prefix: Optional[str] = None, keep_heads: bool = True,
                      source: str = 'mmseg') -> Converted:
    """``mmseg.models.backbones.VisionTransformer`` -> vtseg ViT.

    Source keys: ``cls_token``, ``pos_embed`` (1, 1 + N, C),
    ``patch_embed.projection.weight`` (+ ``.bias`` only with
    ``patch_bias=True``; mmseg's default is no bias, stored here as zeros),
    ``layers.{i}.ln1``, ``layers.{i}.attn.attn.in_proj_weight/bias`` (fused
    q, k, v like timm's qkv), ``layers.{i}.attn.attn.out_proj``,
    ``layers.{i}.ln2``, ``layers.{i}.ffn.layers.0.0`` (fc1),
    ``layers.{i}.ffn.layers.1`` (fc2), ``ln1`` (final norm, only with
    ``final_norm=True``). ``pre_norm`` / ``patch_norm`` models are refused.

    A full segmentor checkpoint (``backbone.*`` keys) converts the backbone
    and keeps the other modules (``decode_head.*``, ``auxiliary_head.*``,
    ``neck.*``) under their names (vtseg builds mmseg heads as they are), or
    drops them with ``keep_heads=False``.

    Args:
        norm_eps: not stored in the weights. mmseg's class default is 1e-5,
            but its ViT configs (Segmenter, SETR, UPerNet-ViT) set 1e-6;
            DPT keeps 1e-5.
        with_cls_token: the mmseg config's ``with_cls_token``; False drops
            the cls token (mmseg adds its position entry, then discards it).
        prefix: prefix of the backbone keys; default ``'backbone.'`` for a
            segmentor checkpoint, ``''`` for a backbone-only one.
    """
    sd = _unwrap(checkpoint, ('state_dict', 'model'), source)
    _check_tensors(sd, source)
    pre = _common(sd, 'module.')
    others, dropped = OrderedDict(), []
    is_segmentor = any(k.startswith(pre + 'backbone.') for k in sd)
    if is_segmentor:
        for k, v in sd.items():
            if not k.startswith(pre + 'backbone.'):
                if keep_heads:
                    others[k[len(pre):]] = v
                else:
                    dropped.append((k, 'non-backbone module'))
        pre = pre + 'backbone.'
        sd = {k: v for k, v in sd.items() if k.startswith(pre)}
        if prefix is None:
            prefix = 'backbone.'
    elif prefix is None:
        prefix = ''
    r = _rename(sd, source=source, block_re=r'^layers\.(\d+)\.(.+)$',
                block_map=_MMSEG_BLOCK_MAP, top_map=_MMSEG_TOP_MAP,
                token_keys={}, drop_rules=[], refuse_rules=_MMSEG_REFUSE,
                key_prefix=pre)
    vt, cfg, notes = _assemble_vit(
        r, source=source, token_order=(), tokens_in_pos=True,
        num_heads=num_heads, pos_hw=pos_hw, norm_eps=norm_eps,
        src_name_of=_timm_src_name('layers.{i}.{s}', _MMSEG_BLOCK_MAP,
                                   _MMSEG_TOP_MAP, pre),
        zero_patch_bias=True, drop_cls=not with_cls_token)
    if others:
        notes.append(f'kept {len(others)} non-backbone tensors under their '
                     'mmseg names (' + ', '.join(sorted(
                         {k.split(".")[0] for k in others})) + ')')
    return _finish(source, vt, cfg, notes, r.dropped + dropped, prefix,
                   others=others)


def _convert_segmenter_decoder(dec: Mapping[str, Tensor], d_encoder: int,
                               patch_size: int, source: str
                               ) -> Tuple[OrderedDict, dict]:
    """Segmenter decoder (keys without ``decoder.``) -> ``decode_head.*``
    under its own names, plus its shape facts."""
    if 'cls_emb' in dec:
        cls_emb = dec['cls_emb']
        if cls_emb.dim() != 3 or cls_emb.shape[0] != 1:
            raise CheckpointConversionError(
                f'{source}: decoder.cls_emb has shape {_shape(cls_emb)}; '
                'expected (1, n_cls, d_model)')
        n_cls, D = int(cls_emb.shape[1]), int(cls_emb.shape[2])
        idx = sorted({int(k.split('.')[1]) for k in dec
                      if re.match(r'^blocks\.\d+\.', k)})
        n_layers = idx[-1] + 1 if idx else 0
        fc1 = dec.get('blocks.0.mlp.fc1.weight')
        d_ff = int(fc1.shape[0]) if fc1 is not None else 4 * D
        expected = {
            'cls_emb': (1, n_cls, D),
            'proj_dec.weight': (D, d_encoder), 'proj_dec.bias': (D, ),
            'proj_patch': (D, D), 'proj_classes': (D, D),
            'decoder_norm.weight': (D, ), 'decoder_norm.bias': (D, ),
            'mask_norm.weight': (n_cls, ), 'mask_norm.bias': (n_cls, ),
        }
        block = {
            'norm1.weight': (D, ), 'norm1.bias': (D, ),
            'attn.qkv.weight': (3 * D, D), 'attn.qkv.bias': (3 * D, ),
            'attn.proj.weight': (D, D), 'attn.proj.bias': (D, ),
            'norm2.weight': (D, ), 'norm2.bias': (D, ),
            'mlp.fc1.weight': (d_ff, D), 'mlp.fc1.bias': (d_ff, ),
            'mlp.fc2.weight': (D, d_ff), 'mlp.fc2.bias': (D, ),
        }
        for i in range(n_layers):
            expected.update({f'blocks.{i}.{k}': s for k, s in block.items()})
        # Segmenter's factory sets n_heads = d_model // 64 (not stored).
        info = dict(kind='mask_transformer', n_cls=n_cls, d_encoder=d_encoder,
                    d_model=D, n_layers=n_layers,
                    n_heads=D // 64 if D % 64 == 0 else None, d_ff=d_ff,
                    norm_eps=1e-5, patch_size=patch_size)
    elif 'head.weight' in dec:
        n_cls = int(dec['head.weight'].shape[0])
        expected = {'head.weight': (n_cls, d_encoder), 'head.bias': (n_cls, )}
        info = dict(kind='linear', n_cls=n_cls, d_encoder=d_encoder,
                    patch_size=patch_size)
    else:
        raise CheckpointConversionError(
            f'{source}: unknown Segmenter decoder: neither decoder.cls_emb '
            '(mask transformer) nor decoder.head.weight (linear) found; '
            f'decoder keys: {_fmt_keys(sorted(dec))}')
    missing = [k for k in expected if k not in dec]
    unknown = [k for k in dec if k not in expected]
    if missing or unknown:
        parts = []
        if missing:
            parts.append('missing keys ' +
                         _fmt_keys(['decoder.' + k for k in missing]))
        if unknown:
            parts.append('unknown keys ' +
                         _fmt_keys(['decoder.' + k for k in unknown]))
        raise CheckpointConversionError(
            f'{source}: Segmenter {info["kind"]} decoder: ' +
            '; '.join(parts))
    for k, shp in expected.items():
        if _shape(dec[k]) != shp:
            raise CheckpointConversionError(
                f'{source}: decoder.{k} has shape {_shape(dec[k])}, expected '
                f'{shp} (d_encoder={d_encoder}, {info})')
    return OrderedDict(('decode_head.' + k, dec[k]) for k in expected), info


def convert_segmenter(checkpoint: Mapping, num_heads: Optional[int] = None,
                      pos_hw: Optional[Sequence[int]] = None,
                      norm_eps: float = 1e-5, prefix: str = 'backbone.',
                      source: str = 'segmenter') -> Converted:
    """Official rstrudel/segmenter ``checkpoint.pth`` -> vtseg.

    ``model['encoder.*']`` is a timm-layout ViT (``encoder.head`` /
    ``encoder.head_dist`` classifier dropped, a distilled encoder's
    ``encoder.dist_token`` becomes a register token with its position entry
    added in) and goes to ``{prefix}*`` (default ``backbone.``).
    ``model['decoder.*']`` keeps the Segmenter names under ``decode_head.``:

    mask transformer: ``decode_head.proj_dec.{weight,bias}`` (d_model,
    d_encoder), ``decode_head.cls_emb`` (1, n_cls, d_model),
    ``decode_head.blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,
    mlp.fc2}.*`` (timm block, LayerNorm eps 1e-5), ``decode_head.proj_patch``
    and ``decode_head.proj_classes`` (d_model, d_model; used as
    ``x @ W``, not ``nn.Linear``), ``decode_head.decoder_norm.*`` (d_model),
    ``decode_head.mask_norm.*`` (n_cls); linear decoder:
    ``decode_head.head.{weight,bias}``.

    Segmenter builds its LayerNorms with PyTorch's default eps 1e-5 (encoder
    and decoder), hence ``norm_eps=1e-5``. ``decode_head_info`` of the
    result has n_cls, d_model, n_layers, n_heads (d_model // 64, as
    Segmenter's factory sets it), d_ff.
    """
    sd = _unwrap(checkpoint, ('model', 'state_dict'), source)
    _check_tensors(sd, source)
    pre = _common(sd, 'module.')
    enc = {k: v for k, v in sd.items() if k.startswith(pre + 'encoder.')}
    dec = {k[len(pre + 'decoder.'):]: v for k, v in sd.items()
           if k.startswith(pre + 'decoder.')}
    rest = [k for k in sd
            if not k.startswith((pre + 'encoder.', pre + 'decoder.'))]
    if rest or not enc or not dec:
        hint = _guess_format(sd.keys())
        raise CheckpointConversionError(
            f'{source}: expected a Segmenter model with encoder.* and '
            f'decoder.* keys; ' +
            (f'unexpected keys {_fmt_keys(rest)}' if rest else
             f'no {"encoder" if not enc else "decoder"}.* keys') +
            (f'. The checkpoint looks like {hint}.' if hint else ''))
    pre = pre + 'encoder.'
    r = _rename(enc, source=source, block_re=_BLOCK_RE,
                block_map=_TIMM_BLOCK_MAP, top_map=_TIMM_TOP_MAP,
                token_keys={'dist_token': 'dist'},
                drop_rules=[(r'^head(_dist)?\.', 'encoder classifier head')],
                refuse_rules=_TIMM_REFUSE, key_prefix=pre)
    vt, cfg, notes = _assemble_vit(
        r, source=source, token_order=('dist', ), tokens_in_pos=True,
        num_heads=num_heads, pos_hw=pos_hw, norm_eps=norm_eps,
        src_name_of=_timm_src_name(prefix=pre))
    head_sd, info = _convert_segmenter_decoder(dec, cfg['embed_dims'],
                                               cfg['patch_size'], source)
    notes.append(f'decoder ({info["kind"]}) kept under decode_head.* with '
                 'the Segmenter names')
    return _finish(source, vt, cfg, notes, r.dropped, prefix, others=head_sd,
                   head_info=info)


# ------------------------------------------------------------ ViTDet
_VITDET_BLOCK_MAP = dict(_TIMM_BLOCK_MAP)
_VITDET_BLOCK_MAP.update({'attn.rel_pos_h': 'attn.rel_pos_h',
                          'attn.rel_pos_w': 'attn.rel_pos_w'})
_VITDET_TOP_MAP = {k: k for k in ('pos_embed', 'patch_embed.proj.weight',
                                  'patch_embed.proj.bias')}
_VITDET_REFUSE = [
    (r'(^|\.)blocks\.\d+\.residual\.',
     'a convolutional residual block after a ViT block (detectron2 '
     'residual_block_indexes)'),
] + _TIMM_REFUSE
#: layout name -> prefix of the ViT keys in that code base's checkpoints.
VITDET_LAYOUTS = {'detectron2': 'backbone.net.', 'mmdet': 'backbone.',
                  'plain': ''}
_REL_RE = re.compile(r'^blocks\.(\d+)\.attn\.rel_pos_([hw])$')
# parameter order inside a vtseg block (ViT.state_dict())
_VITDET_BLOCK_ORDER = (
    'norm1.weight', 'norm1.bias', 'attn.rel_pos_h', 'attn.rel_pos_w',
    'attn.qkv.weight', 'attn.qkv.bias', 'attn.proj.weight', 'attn.proj.bias',
    'ls1.gamma', 'norm2.weight', 'norm2.bias', 'mlp.fc1.weight',
    'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias', 'ls2.gamma')


def _vitdet_body(sd: Mapping[str, Tensor], pre: str
                 ) -> Tuple[dict, str, List[Tuple[str, str]], List[str]]:
    """The ViT tensors of a detectron2 (``backbone.net.*``), mmdet
    (``backbone.*``) or bare ViTDet checkpoint: (tensors, their key prefix,
    dropped (key, reason) pairs, notes)."""
    for cand, what in ((pre + 'backbone.net.', 'detectron2 ViTDet model'),
                       (pre + 'net.', 'detectron2 SimpleFeaturePyramid'),
                       (pre + 'backbone.', 'mmdet ViTDet model')):
        if any(k.startswith((cand + 'blocks.', cand + 'patch_embed.'))
               for k in sd):
            dropped = [(k, 'detection modules (feature pyramid, heads)')
                       for k in sd if not k.startswith(cand)]
            body = {k: v for k, v in sd.items() if k.startswith(cand)}
            return body, cand, dropped, [
                f'took the ViT of a {what} (keys {cand}*)']
    return dict(sd), pre, [], []


def _resolve_blocks(indices: Sequence[int], depth: int, source: str,
                    what: str) -> List[int]:
    out = []
    for i in indices:
        j = i + depth if i < 0 else i
        if not 0 <= j < depth:
            raise ValueError(f'{source}: {what} index {i} is out of range '
                             f'for depth {depth}')
        out.append(j)
    return sorted(set(out))


def convert_vitdet_vit(checkpoint: Mapping, num_heads: Optional[int] = None,
                       window_size: Optional[int] = None,
                       global_blocks: Optional[Sequence[int]] = None,
                       img_size: Optional[Sequence[int]] = None,
                       pos_hw: Optional[Sequence[int]] = None,
                       norm_eps: float = 1e-6, prefix: str = '',
                       source: str = 'vitdet') -> Converted:
    """ViTDet backbone (detectron2 ``ViT`` / mmdet ``projects/ViTDet``) ->
    vtseg ``ViT`` with windowed attention and relative positions.

    Source keys (after ``backbone.net.`` in detectron2 models, ``backbone.``
    in mmdet models, none for a bare backbone; the feature pyramid and the
    detection heads are dropped): ``pos_embed`` (1, [1 +] N, C; the
    pre-training cls entry of ``pretrain_use_cls_token=True`` is dropped),
    ``patch_embed.proj.{weight,bias}``, ``blocks.{i}.{norm1, attn.qkv,
    attn.proj, norm2, mlp.fc1, mlp.fc2}.*`` (timm names, kept) and
    ``blocks.{i}.attn.rel_pos_{h,w}`` (2 * S - 1, head_dim). ViTDet has no
    cls token, no final norm and no LayerScale, so the config has
    ``with_cls_token=False``, ``pos_embed_with_cls=False``,
    ``final_norm=False``. Residual conv blocks are refused.

    Window layout. The relative position tables give it: with two table
    sizes the smaller (S = window) marks the windowed blocks and the larger
    (S = ViTDet's ``img_size // patch_size``, e.g. 64) the global ones.
    Without tables (``use_rel_pos=False``) pass ``window_size`` /
    ``global_blocks`` (default: every block global).

    Target sizes. vtseg sizes the global tables and the position table by
    one grid, ``img_size // patch_size``; it defaults to the global tables'
    grid (ViTDet's input grid), so the tables are kept and ``pos_embed`` is
    resized bicubically (``align_corners=False``, what ViTDet does at run
    time: exact at that grid). ``window_size`` / ``img_size`` other than the
    checkpoint's resize the tables linearly (:func:`~vtseg.models.layers.
    resize_rel_pos`, detectron2's run-time interpolation).

    Numerics: equal to ViTDet when the grid is divisible by the window;
    otherwise build the ViT with ``attn_cfg=dict(type='WindowedAttention',
    mask_padding=False)`` for ViTDet's zero-padded keys (vtseg masks them by
    default).

    Args:
        num_heads: default: head_dim from the tables, else the standard
            table (:data:`HEADS_BY_WIDTH`).
        window_size: window side of the windowed blocks (default: from the
            tables).
        global_blocks: global block indices (default: from the tables).
        img_size: vtseg ``img_size`` (int or (h, w)), see above.
        pos_hw: (H, W) of a non-square source position table.
        norm_eps: LayerNorm eps (ViTDet: 1e-6).
        prefix: prepended to every output key (e.g. ``'backbone.'``).
    """
    sd = _unwrap(checkpoint, ('model', 'state_dict'), source)
    _check_tensors(sd, source)
    pre = _common(sd, 'module.')
    sd, pre, dropped, notes = _vitdet_body(sd, pre)
    r = _rename(sd, source=source, block_re=_BLOCK_RE,
                block_map=_VITDET_BLOCK_MAP, top_map=_VITDET_TOP_MAP,
                token_keys={}, drop_rules=[], refuse_rules=_VITDET_REFUSE,
                key_prefix=pre)
    src_name = _timm_src_name(block_map=_VITDET_BLOCK_MAP,
                              top_map=_VITDET_TOP_MAP, prefix=pre)
    t = r.tensors
    rel: Dict[Tuple[int, str], Tensor] = {}
    for name in list(t):
        m = _REL_RE.match(name)
        if m:
            rel[(int(m.group(1)), m.group(2))] = t.pop(name)
    for name in ('patch_embed.proj.weight', 'pos_embed'):
        if name not in t:
            raise CheckpointConversionError(
                f'{source}: missing key {src_name(name)!r}' +
                (' (use_abs_pos=False models cannot be converted: the vtseg '
                 'ViT always has a position table)'
                 if name == 'pos_embed' else ''))
    w = t['patch_embed.proj.weight']
    if w.dim() != 4 or w.shape[2] != w.shape[3]:
        raise CheckpointConversionError(
            f'{source}: {src_name("patch_embed.proj.weight")!r} has shape '
            f'{_shape(w)}; expected (C, in_channels, p, p)')
    C, p = int(w.shape[0]), int(w.shape[2])

    # --- relative position tables: every block or none
    if rel:
        blocks = {i for i, _ in rel}
        idx = sorted({int(k.split('.')[1]) for k in t
                      if k.startswith('blocks.')} | blocks)
        gaps = [(i, a) for i in idx for a in 'hw' if (i, a) not in rel]
        if gaps:
            i, a = gaps[0]
            raise CheckpointConversionError(
                f'{source}: missing key '
                f'{src_name(f"blocks.{i}.attn.rel_pos_{a}")!r}: relative '
                'position tables must be in every block or in none')
        hd = int(rel[(idx[0], 'h')].shape[-1])
        for (i, a), tab in rel.items():
            if tab.dim() != 2 or tab.shape[0] % 2 == 0 or \
                    int(tab.shape[1]) != hd:
                raise CheckpointConversionError(
                    f'{source}: '
                    f'{src_name(f"blocks.{i}.attn.rel_pos_{a}")!r} has shape '
                    f'{_shape(tab)}; expected (2 * S - 1, head_dim={hd})')
        if num_heads is None:
            if C % hd:
                raise CheckpointConversionError(
                    f'{source}: relative position tables have head_dim={hd}'
                    f', which does not divide embed_dims={C}')
            num_heads = C // hd
            notes.append(f'num_heads={num_heads} from the head_dim of the '
                         'relative position tables')
        elif hd * num_heads != C:
            raise CheckpointConversionError(
                f'{source}: relative position tables have head_dim={hd}, but '
                f'embed_dims={C} / num_heads={num_heads} = {C / num_heads:g}')
        sizes = {i: ((int(rel[(i, 'h')].shape[0]) + 1) // 2,
                     (int(rel[(i, 'w')].shape[0]) + 1) // 2) for i in idx}
    else:
        sizes = {}

    # --- window layout
    depth_src = 1 + max((int(k.split('.')[1]) for k in t
                         if k.startswith('blocks.')), default=-1)
    distinct = sorted(set(sizes.values()), key=lambda s: s[0] * s[1])
    if global_blocks is not None:
        glob = _resolve_blocks(list(global_blocks), depth_src, source,
                               'global_blocks')
    elif not sizes:
        glob = list(range(depth_src)) if not window_size else []
        if window_size is None:
            notes.append('no relative position tables: the window layout is '
                         'not stored, every block is global (pass '
                         'window_size / global_blocks)')
    elif len(distinct) == 2:
        glob = [i for i, s in sizes.items() if s == distinct[1]]
    elif len(distinct) == 1 and not window_size:
        glob = list(range(depth_src))
    else:
        raise CheckpointConversionError(
            f'{source}: cannot tell windowed from global blocks: the '
            f'relative position tables have sizes {distinct} (S of '
            '2 * S - 1); pass global_blocks (--global-blocks) and '
            'window_size (--window-size)')
    windowed = [i for i in range(depth_src) if i not in glob]
    if window_size is None:
        src_ws = {sizes[i] for i in windowed if i in sizes}
        if len(src_ws) > 1 or any(s[0] != s[1] for s in src_ws):
            raise CheckpointConversionError(
                f'{source}: windowed blocks {windowed} have relative '
                f'position tables of sizes {sorted(src_ws)}; expected one '
                'square window: pass window_size (--window-size)')
        window_size = next(iter(src_ws))[0] if src_ws else 0
    if windowed and not window_size:
        raise CheckpointConversionError(
            f'{source}: blocks {windowed} are windowed but the window size '
            'is unknown; pass window_size (--window-size)')

    # --- position table: drop the cls entry, resize to the target grid
    pos = t['pos_embed']
    if pos.dim() != 3 or pos.shape[0] != 1 or pos.shape[2] != C:
        raise CheckpointConversionError(
            f'{source}: {src_name("pos_embed")!r} has shape {_shape(pos)}; '
            f'expected (1, [1 +] N, {C})')
    L = int(pos.shape[1])
    if pos_hw is not None:
        src_hw = (int(pos_hw[0]), int(pos_hw[1]))
        n = src_hw[0] * src_hw[1]
        if L not in (n, n + 1):
            raise CheckpointConversionError(
                f'{source}: {src_name("pos_embed")!r} has {L} entries; '
                f'pos_hw={src_hw} needs {n} (+ 1 cls entry)')
        has_cls = L == n + 1
    elif L > 1 and _is_square(L - 1):
        src_hw, has_cls = (math.isqrt(L - 1), ) * 2, True
    elif _is_square(L):
        src_hw, has_cls = (math.isqrt(L), ) * 2, False
    else:
        raise CheckpointConversionError(
            f'{source}: {src_name("pos_embed")!r} has {L} entries, neither a '
            'square grid nor a square grid plus a cls entry; pass pos_hw '
            '(--pos-hw H W)')
    patch_pos = pos[:, 1:] if has_cls else pos
    if has_cls:
        notes.append('dropped the pre-training cls entry of pos_embed '
                     '(ViTDet ignores it: pretrain_use_cls_token)')
    if img_size is not None:
        if isinstance(img_size, int):
            img_size = (img_size, img_size)
        grid = (int(img_size[0]) // p, int(img_size[1]) // p)
    elif glob and sizes:
        grid = sizes[glob[0]]
    else:
        grid = src_hw
    if grid != src_hw:
        # in the checkpoint's precision (fp32 at least), as ViTDet does
        work = torch.promote_types(patch_pos.dtype, torch.float32)
        tab = patch_pos.reshape(1, src_hw[0], src_hw[1], C).permute(
            0, 3, 1, 2).to(work)
        tab = F.interpolate(tab, size=grid, mode='bicubic',
                            align_corners=False)
        patch_pos = tab.permute(0, 2, 3, 1).reshape(1, -1, C).to(
            patch_pos.dtype)
        notes.append(f'pos_embed resized from {src_hw[0]}x{src_hw[1]} to '
                     f'{grid[0]}x{grid[1]} (bicubic, align_corners=False, '
                     'as ViTDet at run time)')
    t['pos_embed'] = patch_pos.contiguous()

    vt, cfg, n2 = _assemble_vit(
        r, source=source, token_order=(), tokens_in_pos=False,
        num_heads=num_heads, pos_hw=grid, norm_eps=norm_eps,
        src_name_of=src_name, require_cls=False, patch_only_table=True)
    notes += n2
    depth = cfg['depth']
    if depth != depth_src:  # pragma: no cover (assemble checks the blocks)
        raise CheckpointConversionError(f'{source}: depth mismatch')

    # --- relative position tables at the target sizes
    if rel:
        resized = {}
        for i in range(depth):
            want = (window_size, window_size) if i in windowed else grid
            for a, S in zip('hw', want):
                tab = rel[(i, a)]
                if int(tab.shape[0]) != 2 * S - 1:
                    resized.setdefault(
                        (int(tab.shape[0]), 2 * S - 1), []).append(i)
                    tab = resize_rel_pos(tab, 2 * S - 1)
                vt[f'blocks.{i}.attn.rel_pos_{a}'] = tab.contiguous()
        for (a, b), blocks in sorted(resized.items()):
            notes.append(f'relative position tables of blocks '
                         f'{sorted(set(blocks))} resized from {a} to {b} '
                         'entries (linear, as detectron2 at run time)')
    # the order of ViT.state_dict(): embeddings, block by block, norm
    order = {k: n for n, k in enumerate(_VITDET_BLOCK_ORDER)}
    blocks = sorted((k for k in vt if k.startswith('blocks.')),
                    key=lambda k: (int(k.split('.')[1]),
                                   order.get(k.split('.', 2)[2], len(order))))
    vt = OrderedDict([(k, vt[k]) for k in vt if not k.startswith('blocks.')
                      and not k.startswith('norm.')] +
                     [(k, vt[k]) for k in blocks] +
                     [(k, vt[k]) for k in vt if k.startswith('norm.')])
    if window_size or rel:
        cfg.update(window_size=int(window_size),
                   global_blocks=glob if window_size else [],
                   use_rel_pos=bool(rel), rel_pos_zero_init=True)
    if windowed and any(g % window_size for g in grid):
        notes.append(
            f'the {grid[0]}x{grid[1]} grid is not divisible by window_size='
            f'{window_size}: vtseg masks the padded keys; for ViTDet\'s '
            "numerics build the ViT with attn_cfg=dict(type='"
            "WindowedAttention', mask_padding=False)")
    return _finish(source, vt, cfg, notes, r.dropped + dropped, prefix)


#: MAE checkpoint keys that have no place in a ViTDet backbone -> why.
_MAE_DROP = (
    (r'cls_token$', 'cls token (ViTDet has none; the cls entry of '
     'pos_embed is dropped too)'),
    (r'(norm|fc_norm)\.', 'final norm (ViTDet has none)'),
    (r'head\.', 'classification head'),
    (r'(mask_token$|decoder_)', 'MAE decoder (pre-training only)'),
)


def convert_mae_vit(checkpoint: Mapping, window_size: int = 14,
                    global_blocks: Sequence[int] = (2, 5, 8, 11),
                    img_size: Union[int, Sequence[int]] = 1024,
                    num_heads: Optional[int] = None,
                    pos_hw: Optional[Sequence[int]] = None,
                    norm_eps: float = 1e-6, prefix: str = '',
                    source: str = 'mae') -> Converted:
    """Plain MAE ViT (facebookresearch/mae pre-training or fine-tuning
    checkpoint, timm names) -> vtseg ``ViT`` in the ViTDet layout: the
    initialisation of ViTDet's recipe (``configs/vitdet/*_coco.py``).

    What ViTDet does when it loads an MAE checkpoint, done once here: the
    cls token, the final norm (``norm`` / ``fc_norm``), a classifier
    ``head`` and the MAE decoder (``mask_token``, ``decoder_*``) are
    dropped; the cls entry of ``pos_embed`` is dropped and the table
    resized bicubically to ``img_size // patch`` (as ViTDet at run time);
    every block gets zero relative-position tables (ViTDet's
    ``rel_pos_zero_init``): (2 * window_size - 1, head_dim) in the windowed
    blocks, (2 * G - 1, head_dim) with G = ``img_size // patch`` in
    ``global_blocks``. The rest is :func:`convert_vitdet_vit`.

    Args:
        window_size: window side of the windowed blocks (ViTDet: 14).
        global_blocks: global block indices (ViT-B: 2, 5, 8, 11; ViT-L:
            5, 11, 17, 23).
        img_size: detector input size (int or (h, w)): the grid of
            ``pos_embed`` and of the global tables.
        num_heads / pos_hw / norm_eps / prefix: as
            :func:`convert_vitdet_vit`.
    """
    sd = _unwrap(checkpoint, ('model', 'state_dict'), source)
    _check_tensors(sd, source)
    pre = _common(sd, 'module.')
    body, dropped = {}, []
    for k, v in sd.items():
        why = next((w for pat, w in _MAE_DROP
                    if re.match(pat, k[len(pre):])), None)
        if why is None:
            body[k] = v
        else:
            dropped.append((k, why))
    if any(_REL_RE.match(k[len(pre):]) for k in body):
        raise CheckpointConversionError(
            f'{source}: the checkpoint already has relative position tables '
            '(a ViTDet backbone): convert it with vitdet2vtseg.py')
    w = body.get(pre + 'patch_embed.proj.weight')
    if w is None or w.dim() != 4:
        raise CheckpointConversionError(
            f'{source}: missing key {pre + "patch_embed.proj.weight"!r} '
            '(C, 3, p, p): not a ViT checkpoint')
    C, p = int(w.shape[0]), int(w.shape[-1])
    heads = num_heads or HEADS_BY_WIDTH.get(C)
    if not heads or C % heads:
        raise CheckpointConversionError(
            f'{source}: cannot tell the head count of embed_dims={C}; pass '
            'num_heads (--num-heads)')
    hw = (img_size, img_size) if isinstance(img_size, int) else img_size
    grid = (int(hw[0]) // p, int(hw[1]) // p)
    depth = 1 + max((int(m.group(1)) for m in (
        re.match(r'blocks\.(\d+)\.', k[len(pre):]) for k in body) if m),
        default=-1)
    glob = _resolve_blocks(list(global_blocks), depth, source,
                           'global_blocks')
    for i in range(depth):
        sizes = grid if i in glob else (window_size, window_size)
        for a, S in zip('hw', sizes):
            body[f'{pre}blocks.{i}.attn.rel_pos_{a}'] = w.new_zeros(
                2 * S - 1, C // heads)
    res = convert_vitdet_vit(
        body, num_heads=heads, window_size=window_size,
        global_blocks=glob, img_size=hw, pos_hw=pos_hw, norm_eps=norm_eps,
        prefix=prefix, source=source)
    notes = [f'zero relative position tables added (ViTDet: '
             f'rel_pos_zero_init): window {window_size} in blocks '
             f'{[i for i in range(depth) if i not in glob]}, grid '
             f'{grid[0]}x{grid[1]} in blocks {glob}'] + res.notes
    _log_dropped(source, dropped)
    return res._replace(dropped=[k for k, _ in dropped] + list(res.dropped),
                        notes=notes)


class ViTDetExport(NamedTuple):
    """Result of :func:`convert_vtseg_to_vitdet`.

    Attributes:
        state_dict: ViTDet tensors under the layout's key prefix.
        vitdet_cfg: detectron2 / mmdet ``ViT`` kwargs read off the weights
            (``window_size`` / ``window_block_indexes`` only when relative
            position tables show them).
        dropped: input keys not carried over (non-backbone modules).
        notes: remarks.
    """
    state_dict: 'OrderedDict[str, Tensor]'
    vitdet_cfg: dict
    dropped: List[str]
    notes: List[str]


def convert_vtseg_to_vitdet(checkpoint: Mapping, layout: str = 'detectron2',
                            prefix: Optional[str] = None,
                            pretrain_use_cls_token: bool = True,
                            source: str = 'vtseg') -> ViTDetExport:
    """vtseg ``ViT`` -> ViTDet names (the inverse of
    :func:`convert_vitdet_vit` when the sizes agree: the round trip
    vtseg -> ViTDet -> vtseg is exact).

    Args:
        checkpoint: vtseg state dict or ``{'state_dict': ...}``.
        layout: ``'detectron2'`` (``backbone.net.*``), ``'mmdet'``
            (``backbone.*``) or ``'plain'`` (no prefix).
        prefix: prefix of the vtseg backbone keys (default ``'backbone.'``
            when present, else ``''``); other keys are dropped.
        pretrain_use_cls_token: prepend a (zero, unused) cls entry to
            ``pos_embed``, the layout of ViTDet's default
            ``pretrain_use_cls_token=True``.

    Refused (ViTDet cannot hold them): cls / register tokens, a final norm,
    LayerScale, a non-square position table.
    """
    if layout not in VITDET_LAYOUTS:
        raise ValueError(f'layout must be one of {sorted(VITDET_LAYOUTS)}, '
                         f'got {layout!r}')
    sd = _unwrap(checkpoint, ('state_dict', 'model'), source)
    _check_tensors(sd, source)
    if prefix is None:
        prefix = 'backbone.' if any(k.startswith('backbone.')
                                    for k in sd) else ''
    body = {k[len(prefix):]: v for k, v in sd.items()
            if k.startswith(prefix)}
    dropped = [k for k in sd if not k.startswith(prefix)]
    refuse = [
        (r'^(cls_token|reg_token)$', 'prefix tokens (ViTDet has none: build '
         'the ViT with with_cls_token=False, num_register_tokens=0)'),
        (r'^norm\.', "a final norm (ViTDet's ViT has none: final_norm="
         'False)'),
        (r'\.ls[12]\.gamma$', 'LayerScale (ViTDet has none)'),
    ]
    block_keys = set(_VITDET_BLOCK_MAP.values()) - {'ls1.gamma', 'ls2.gamma'}
    unknown = []
    for k, v in body.items():
        for pat, why in refuse:
            if re.search(pat, k):
                raise CheckpointConversionError(
                    f'{source}: key {prefix + k!r} {_shape(v)} is {why}; '
                    'refusing to convert')
        m = re.match(_BLOCK_RE, k)
        if k not in _VITDET_TOP_MAP and not (m and m.group(2) in block_keys):
            unknown.append(prefix + k)
    if unknown:
        raise CheckpointConversionError(
            f'{source}: {len(unknown)} key(s) have no place in a ViTDet ViT: '
            f'{_fmt_keys(unknown)}')
    for name in ('pos_embed', 'patch_embed.proj.weight'):
        if name not in body:
            raise CheckpointConversionError(
                f'{source}: missing key {prefix + name!r}')
    pos, w = body['pos_embed'], body['patch_embed.proj.weight']
    C, p = int(w.shape[0]), int(w.shape[-1])
    N = int(pos.shape[1])
    if pos.dim() != 3 or not _is_square(N):
        raise CheckpointConversionError(
            f'{source}: {prefix}pos_embed has shape {_shape(pos)}; ViTDet '
            'needs a square patch-only table (1, g * g, C)')
    g = math.isqrt(N)
    notes = []
    if pretrain_use_cls_token:
        pos = torch.cat([pos.new_zeros(1, 1, C), pos], dim=1)
        notes.append('pos_embed got a zero cls entry in front '
                     '(pretrain_use_cls_token=True; ViTDet ignores it)')
    depth = 1 + max((int(k.split('.')[1]) for k in body
                     if k.startswith('blocks.')), default=-1)
    fc1 = body.get('blocks.0.mlp.fc1.weight')
    cfg = dict(img_size=g * p, patch_size=p, in_chans=int(w.shape[1]),
               embed_dim=C, depth=depth,
               mlp_ratio=(int(fc1.shape[0]) / C) if fc1 is not None else None,
               qkv_bias='blocks.0.attn.qkv.bias' in body,
               use_abs_pos=True, pretrain_img_size=g * p,
               pretrain_use_cls_token=pretrain_use_cls_token)
    rel = {int(m.group(1)): (int(v.shape[0]) + 1) // 2 for k, v in body.items()
           if (m := _REL_RE.match(k)) and m.group(2) == 'h'}
    cfg['use_rel_pos'] = bool(rel)
    if rel:
        cfg['num_heads'] = C // int(body['blocks.0.attn.rel_pos_h'].shape[1])
        win = sorted({s for s in rel.values() if s != g})
        cfg['window_size'] = win[0] if len(win) == 1 else (win or 0)
        cfg['window_block_indexes'] = [i for i in sorted(rel)
                                       if rel[i] != g]
    else:
        notes.append('no relative position tables: window_size / '
                     'window_block_indexes are not stored in the weights')
    body['pos_embed'] = pos
    out_pre = VITDET_LAYOUTS[layout]
    out = OrderedDict((out_pre + k, v) for k, v in body.items())
    for note in notes:
        print_log(f'{source}: {note}', logger='current')
    return ViTDetExport(out, cfg, dropped, notes)


#: source name -> converter function.
CONVERTERS: Dict[str, Callable[..., Converted]] = {
    'timm': convert_timm_vit,
    'dino': convert_dino_vit,
    'dinov2': convert_dinov2_vit,
    'mmseg': convert_mmseg_vit,
    'segmenter': convert_segmenter,
    'vitdet': convert_vitdet_vit,
    'mae': convert_mae_vit,
}

_SCRIPTS = {
    'timm': 'timm2vtseg.py',
    'dino': 'dino2vtseg.py',
    'dinov2': 'dinov2_2vtseg.py',
    'mmseg': 'mmseg2vtseg.py',
    'segmenter': 'segmenter2vtseg.py',
    'vitdet': 'vitdet2vtseg.py',
    'mae': 'mae2vtseg.py',
}


# ------------------------------------------------------------ files / CLI
def load_source_checkpoint(path: str):
    """Load a source checkpoint weights-only.

    Uses :func:`vtseg.compat.safe_torch_load`; ``argparse.Namespace`` is
    additionally allowed because DINO / timm training checkpoints store
    their command-line ``args`` with it (a plain attribute container: no
    code runs when it is rebuilt).
    """
    with torch.serialization.safe_globals([argparse.Namespace]):
        return safe_torch_load(path, map_location='cpu')


def _plain(obj):
    """Meta values as weights-only-loadable builtins."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def convert_file(source: str, src: str, dst: str, force: bool = False,
                 **kwargs) -> Converted:
    """Convert ``src`` with ``CONVERTERS[source]`` and save
    ``{'state_dict': ..., 'meta': {...}}`` to ``dst``.

    Raises:
        FileExistsError: ``dst`` exists and ``force`` is False, or ``dst``
            is ``src``.
        CheckpointConversionError: the checkpoint cannot be converted.
    """
    if source not in CONVERTERS:
        raise ValueError(f'unknown source {source!r}; expected one of '
                         f'{sorted(CONVERTERS)}')
    if osp.exists(dst) and osp.exists(src) and osp.samefile(src, dst):
        raise FileExistsError(f'destination {dst} is the source checkpoint')
    if osp.exists(dst) and not force:
        raise FileExistsError(f'{dst} exists; not overwriting it (pass '
                              '--force to replace it)')
    ckpt = load_source_checkpoint(src)
    res = CONVERTERS[source](ckpt, source=f'{source} checkpoint {src}',
                             **kwargs)
    meta = dict(source=osp.abspath(src), source_format=source,
                converter=f'tools/model_converters/{_SCRIPTS[source]}',
                converter_args={k: v for k, v in kwargs.items()},
                backbone_cfg=res.backbone_cfg,
                decode_head_info=res.decode_head_info,
                dropped_keys=res.dropped, notes=res.notes)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    tmp = dst + '.tmp'
    torch.save({'state_dict': res.state_dict, 'meta': _plain(meta)}, tmp)
    os.replace(tmp, dst)
    return res


def convert_file_to_vitdet(src: str, dst: str, force: bool = False,
                           **kwargs) -> ViTDetExport:
    """Convert the vtseg checkpoint ``src`` to ViTDet names with
    :func:`convert_vtseg_to_vitdet` and save it to ``dst``:
    ``{'model': ..., 'meta': ...}`` for the detectron2 layout (what its
    ``DetectionCheckpointer`` reads), ``{'state_dict': ..., 'meta': ...}``
    otherwise (mmdet / mmengine)."""
    if osp.exists(dst) and osp.exists(src) and osp.samefile(src, dst):
        raise FileExistsError(f'destination {dst} is the source checkpoint')
    if osp.exists(dst) and not force:
        raise FileExistsError(f'{dst} exists; not overwriting it (pass '
                              '--force to replace it)')
    ckpt = load_source_checkpoint(src)
    res = convert_vtseg_to_vitdet(ckpt, source=f'vtseg checkpoint {src}',
                                  **kwargs)
    layout = kwargs.get('layout', 'detectron2')
    meta = dict(source=osp.abspath(src), source_format='vtseg',
                converter='tools/model_converters/vitdet2vtseg.py --reverse',
                converter_args=dict(kwargs), vitdet_cfg=res.vitdet_cfg,
                dropped_keys=res.dropped, notes=res.notes)
    key = 'model' if layout == 'detectron2' else 'state_dict'
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    tmp = dst + '.tmp'
    torch.save({key: res.state_dict, 'meta': _plain(meta)}, tmp)
    os.replace(tmp, dst)
    return res


def _img_size_arg(values: Optional[Sequence[int]]):
    if values is None:
        return None
    if len(values) not in (1, 2):
        raise SystemExit('error: --img-size takes S or H W')
    return values[0] if len(values) == 1 else tuple(values)


def _vitdet_reverse_cli(args) -> int:
    prefix = None if args.prefix == '' else args.prefix
    try:
        res = convert_file_to_vitdet(
            args.src, args.dst, force=args.force, layout=args.layout,
            prefix=prefix, pretrain_use_cls_token=not args.no_cls_entry)
    except (CheckpointMismatchError, FileExistsError, FileNotFoundError,
            UnsafeCheckpointError, ValueError, RuntimeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'wrote {args.dst}: {len(res.state_dict)} tensors in the '
          f'{args.layout} layout')
    print(f'ViTDet config: {res.vitdet_cfg}')
    return 0


def _build_parser(source: str) -> argparse.ArgumentParser:
    titles = {
        'timm': 'a timm / DeiT ViT',
        'dino': 'a facebookresearch/dino ViT',
        'dinov2': 'a facebookresearch/dinov2 ViT',
        'mmseg': 'an mmseg VisionTransformer (backbone or full segmentor)',
        'segmenter': 'an official rstrudel/segmenter',
        'vitdet': 'a ViTDet (detectron2 / mmdet projects/ViTDet)',
        'mae': 'a plain MAE (facebookresearch/mae) ViT, for a ViTDet detector',
    }
    p = argparse.ArgumentParser(
        description=f'Convert {titles[source]} checkpoint to the vtseg '
        'ViT key layout (see docs/model_converters.md).')
    p.add_argument('src', help='source checkpoint (loaded weights-only)')
    p.add_argument('dst', help='output vtseg checkpoint')
    default_prefix = {'segmenter': 'backbone.', 'mmseg': None}.get(source, '')
    p.add_argument('--prefix', default=default_prefix,
                   help='prefix of the backbone keys (default: '
                   f'{default_prefix!r}' +
                   ("; 'backbone.' for a segmentor checkpoint, '' else"
                    if source == 'mmseg' else '') + ')')
    p.add_argument('--num-heads', type=int, default=None,
                   help='attention heads (default: standard table by width)')
    p.add_argument('--pos-hw', type=int, nargs=2, metavar=('H', 'W'),
                   help='grid of a non-square position table')
    default_eps = 1e-5 if source == 'segmenter' else 1e-6
    p.add_argument('--norm-eps', type=float, default=default_eps,
                   help=f'LayerNorm eps for the config (default '
                   f'{default_eps:g})')
    if source in ('dino', 'dinov2'):
        p.add_argument('--which', choices=('teacher', 'student'),
                       default='teacher',
                       help='network of a training checkpoint')
    if source == 'vitdet':
        p.add_argument('--window-size', type=int, default=None,
                       help='window of the windowed blocks (default: from '
                       'the relative position tables); another size '
                       'resizes the tables')
        p.add_argument('--global-blocks', type=int, nargs='*', default=None,
                       help='global block indices (default: from the tables)')
        p.add_argument('--img-size', type=int, nargs='+', default=None,
                       metavar='S', help='vtseg img_size (S or H W): the '
                       'grid of pos_embed and of the global tables (default: '
                       "the global tables' grid, e.g. 1024 for ViTDet-B)")
        p.add_argument('--reverse', action='store_true',
                       help='convert a vtseg ViT checkpoint to ViTDet names '
                       'instead')
        p.add_argument('--layout', choices=sorted(VITDET_LAYOUTS),
                       default='detectron2',
                       help='--reverse: key layout of the output '
                       '(detectron2: backbone.net.*, mmdet: backbone.*)')
        p.add_argument('--no-cls-entry', action='store_true',
                       help='--reverse: no cls entry in pos_embed '
                       '(pretrain_use_cls_token=False)')
    if source == 'mae':
        p.add_argument('--window-size', type=int, default=14,
                       help='window of the windowed blocks (default 14)')
        p.add_argument('--global-blocks', type=int, nargs='+',
                       default=[2, 5, 8, 11],
                       help='global block indices (default 2 5 8 11, '
                       'ViT-B; ViT-L: 5 11 17 23)')
        p.add_argument('--img-size', type=int, nargs='+', default=[1024],
                       metavar='S', help='detector input size (S or H W): '
                       'the grid of pos_embed and of the global tables '
                       '(default 1024)')
    if source == 'mmseg':
        p.add_argument('--no-cls-token', action='store_true',
                       help='the mmseg config has with_cls_token=False')
        p.add_argument('--drop-heads', action='store_true',
                       help='drop non-backbone modules of a segmentor '
                       'checkpoint instead of keeping them')
    p.add_argument('--force', action='store_true',
                   help='overwrite an existing DST')
    return p


def cli_main(source: str, argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``tools/model_converters/<source>2vtseg.py``."""
    args = _build_parser(source).parse_args(argv)
    kwargs = dict(num_heads=args.num_heads,
                  pos_hw=tuple(args.pos_hw) if args.pos_hw else None,
                  norm_eps=args.norm_eps, prefix=args.prefix)
    if source in ('dino', 'dinov2'):
        kwargs['which'] = args.which
    if source == 'mmseg':
        kwargs['with_cls_token'] = not args.no_cls_token
        kwargs['keep_heads'] = not args.drop_heads
    if source == 'vitdet' and args.reverse:
        return _vitdet_reverse_cli(args)
    if source in ('vitdet', 'mae'):
        kwargs.update(window_size=args.window_size,
                      global_blocks=args.global_blocks,
                      img_size=_img_size_arg(args.img_size))
    try:
        res = convert_file(source, args.src, args.dst, force=args.force,
                           **kwargs)
    except (CheckpointMismatchError, FileExistsError, FileNotFoundError,
            UnsafeCheckpointError, ValueError, RuntimeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    n_par = sum(v.numel() for v in res.state_dict.values())
    print(f'wrote {args.dst}: {len(res.state_dict)} tensors, '
          f'{n_par / 1e6:.2f} M parameters; backbone keys under '
          f'{res.backbone_prefix!r}')
    print(f'backbone config: {res.backbone_cfg}')
    if res.decode_head_info:
        print(f'decode head: {res.decode_head_info}')
    return 0
