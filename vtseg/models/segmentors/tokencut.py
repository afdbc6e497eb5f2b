"""TokenCut: training-free object discovery, saliency and video segmentation
by a normalised cut on self-supervised ViT tokens (docs/methods/tokencut.md).

The math lives in :mod:`vtseg.functional.normalized_cut` and
:mod:`vtseg.functional.bilateral_solver`; these modules only pick the
features from a vtseg :class:`~vtseg.models.backbones.ViT` and turn cuts into
mmseg data samples. The data preprocessors (``TokenCutDataPreProcessor``,
``VideoDataPreProcessor``) are in :mod:`vtseg.models.data_preprocessors`.

Outputs (``predict``), per image, a :class:`mmseg.structures.SegDataSample`:

* ``pred_instances`` (mmengine ``InstanceData``): ``bboxes`` (K, 4) float32
  [x1, y1, x2, y2] in original-image pixels, ``scores`` (K,), ``labels`` (K,)
  all 1 (``'foreground'`` in the datasets' ``('background', 'foreground')``
  classes), ``masks`` (K, H, W) bool at the original size. K = 1 unless
  ``max_objects > 1``. The first instance is the TokenCut object (CorLoc).
* ``pred_sem_seg`` (1, H, W): union of the instance masks (discovery) or the
  saliency map > 0.5 (saliency).
* ``seg_logits`` (1, H, W) float in [0, 1]: the saliency map (the seed's
  component, nearest-upsampled, or the bilateral solver's soft output).
  SaliencyMetric reads it as a probability map.
* ``pred_eigvec`` (1, h, w): the second eigenvector on the token grid.
"""
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.structures import InstanceData, PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.structures import SegDataSample
from PIL import Image
from torch import Tensor

from vtseg.functional.bilateral_solver import bilateral_solve
from vtseg.functional.ncut_foreground import (border_tokens,
                                              check_foreground_rule)
from vtseg.functional.normalized_cut import (MULTI_DEFAULTS, NCUT_SOLVERS,
                                             component_box, fiedler_vector,
                                             is_uniform_graph, ncut_affinity,
                                             ncut_box, ncut_from_affinity,
                                             ncut_multi_from_affinity,
                                             ncut_video)
from vtseg.registry import MODELS
from ..utils.checkpoint import CheckpointMismatchError

__all__ = [
    'TokenCut', 'TokenCutVideo', 'TOKENCUT_FEATURES', 'DEFAULT_FOREGROUND',
    'DEFAULT_VIDEO_FOREGROUND',
    'extract_token_features', 'select_token_features', 'upsample_token_map'
]

#: feature choices, see :func:`extract_token_features`.
TOKENCUT_FEATURES = ('k', 'q', 'v', 'kqv', 'k_nobias', 'q_nobias',
                     'v_nobias', 'tokens', 'tokens_norm')

#: TokenCut saliency bilateral-solver settings
#: (docs/methods/tokencut.md#saliency-mode).
DEFAULT_BS = dict(sigma_spatial=16, sigma_luma=16, sigma_chroma=8, lam=256.0,
                  a_diag_min=1e-5, cg_tol=1e-5, cg_maxiter=25)

#: default foreground rules of TokenCut (image) and TokenCutVideo, chosen on
#: the tuning set (docs/protocol.md, docs/tokencut.md "Foreground side and
#: the tuning protocol"); the paper-reproducing DINO configs set
#: 'reference'.
DEFAULT_FOREGROUND = 'border'
DEFAULT_VIDEO_FOREGROUND = 'border'


def _check_feature(backbone, feature: str, layer: int) -> int:
    if feature not in TOKENCUT_FEATURES:
        raise ValueError(f'feature must be one of {TOKENCUT_FEATURES}, got '
                         f'{feature!r}')
    depth = len(backbone.blocks)
    blk = layer + depth if layer < 0 else layer
    if not 0 <= blk < depth:
        raise ValueError(f'layer {layer} out of range for a {depth}-block '
                         'backbone')
    return blk


def select_token_features(backbone, out: dict, feature: str = 'k',
                          layer: int = -1, center: bool = False) -> Tensor:
    """Pick TokenCut features from ``backbone.forward_features`` outputs
    (which must hold the qkv / tokens of ``layer``); see
    :func:`extract_token_features`. Returns (B, N, C) without prefix
    tokens."""
    blk = _check_feature(backbone, feature, layer)
    n_prefix = out['n_prefix']
    if feature[0] in 'qkv':
        if blk not in out['qkv']:
            raise KeyError(f'forward_features did not return the qkv of '
                           f'block {blk}')
        q, k, v = out['qkv'][blk]
        B, nh, T, hd = k.shape

        def cat(t):
            return t.transpose(1, 2).reshape(B, T, nh * hd)

        parts = dict(q=cat(q), k=cat(k), v=cat(v))
        C = nh * hd
        if feature.endswith('_nobias'):
            bias = backbone.blocks[blk].attn.qkv.bias
            if bias is None:
                raise ValueError(f'{feature}: block {blk} has no qkv bias')
            i = 'qkv'.index(feature[0])
            feats = parts[feature[0]] - bias[i * C:(i + 1) * C]
        elif feature == 'kqv':
            feats = torch.cat([parts['k'], parts['q'], parts['v']], dim=-1)
        else:
            feats = parts[feature]
    else:
        if blk not in out['tokens']:
            raise KeyError(f'forward_features did not return the tokens of '
                           f'block {blk}')
        feats = out['tokens'][blk]
        if feature == 'tokens_norm':
            if backbone.norm is None:
                raise ValueError('tokens_norm: the backbone has no final norm')
            feats = backbone.norm(feats)
    feats = feats[:, n_prefix:]
    if center:
        feats = feats - feats.mean(dim=1, keepdim=True)
    return feats


def extract_token_features(backbone, inputs: Tensor, feature: str = 'k',
                           layer: int = -1, center: bool = False
                           ) -> Tuple[Tensor, Tuple[int, int]]:
    """Patch features of a vtseg ViT for TokenCut.

    Args:
        backbone: :class:`vtseg.models.backbones.ViT`.
        inputs: (B, 3, H, W) normalised images (padded to the patch size by
            the backbone with zeros).
        feature: ``'k'`` / ``'q'`` / ``'v'``: attention keys / queries / values
            of block ``layer``, all heads concatenated (the reference's
            choice: keys); ``'kqv'``: the three concatenated;
            ``'k_nobias'`` (``q_``, ``v_``): minus the qkv projection's bias
            (a constant offset shared by all tokens; DINOv2-style keys carry a
            large one that makes every cosine exceed tau); ``'tokens'``: the
            block's output tokens (before the final norm); ``'tokens_norm'``:
            after the backbone's final LayerNorm.
        layer: block index (negative from the end).
        center: subtract each image's mean patch feature.

    Returns:
        ((B, N, C) patch features without prefix tokens, (h, w) grid).
    """
    blk = _check_feature(backbone, feature, layer)
    want_qkv = feature[0] in 'qkv'
    out = backbone.forward_features(
        inputs, qkv_layers=[blk] if want_qkv else [],
        token_layers=[] if want_qkv else [blk], out_indices=[])
    return select_token_features(backbone, out, feature, blk,
                                 center), tuple(out['hw'])


def upsample_token_map(tmap: np.ndarray, patch: int, img_shape, ori_shape,
                       mode: str = 'nearest') -> np.ndarray:
    """A token map at the original image size.

    Tokens cover p x p pixels of the network input; padding is cropped, then
    the map is resized to the original image (nearest, as the reference).

    Args:
        tmap: (h, w) token map (bool or float).
        patch: patch size p in pixels.
        img_shape: (H, W) of the network input before padding.
        ori_shape: (H_ori, W_ori) of the original image.
        mode: ``F.interpolate`` mode of the resize.

    Returns:
        (H_ori, W_ori) float32 array.
    """
    h, w = tmap.shape
    t = torch.from_numpy(np.ascontiguousarray(tmap, dtype=np.float32))
    t = t[None, None]
    if tuple(img_shape) == (h * patch, w * patch):
        # no padding: straight to the original size (the reference's call)
        out = F.interpolate(t, size=tuple(ori_shape), mode=mode)
        return out[0, 0].numpy()
    up = t.repeat_interleave(patch, 2).repeat_interleave(patch, 3)
    up = up[..., :img_shape[0], :img_shape[1]]
    if tuple(img_shape) != tuple(ori_shape):
        up = F.interpolate(up, size=tuple(ori_shape), mode=mode)
    return up[0, 0].numpy()


def _load_rgb(meta: dict, inputs: Tensor, mean: Tensor, std: Tensor
              ) -> np.ndarray:
    """Original RGB image (0..255 uint8) for the bilateral solver: read from
    ``img_path`` as the reference does, else de-normalised from the input."""
    path = meta.get('img_path')
    if path and osp.isfile(path):
        return np.asarray(Image.open(path).convert('RGB'))
    img = inputs * std + mean
    hs, ws = meta['img_shape'][:2]
    img = img[:, :hs, :ws][None]
    img = F.interpolate(img, size=tuple(meta['ori_shape'][:2]),
                        mode='bilinear', align_corners=False)[0]
    return img.clamp(0, 255).round().byte().permute(1, 2, 0).cpu().numpy()


class _TokenCutBase(BaseSegmentor):
    """Backbone + feature selection shared by image and video TokenCut."""

    def __init__(self,
                 backbone: dict,
                 feature: str = 'k',
                 layer: int = -1,
                 center: bool = False,
                 tau: float = 0.2,
                 eps: float = 1e-5,
                 binary_graph: bool = True,
                 solver: str = 'auto',
                 faithful: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if feature not in TOKENCUT_FEATURES:
            raise ValueError(f'feature must be one of {TOKENCUT_FEATURES}, '
                             f'got {feature!r}')
        if solver not in NCUT_SOLVERS:
            raise ValueError(f'solver must be one of {NCUT_SOLVERS}, got '
                             f'{solver!r}')
        self.feature = feature
        self.layer = layer
        self.center = center
        self.tau = tau
        self.eps = eps
        self.binary_graph = binary_graph
        self.faithful = faithful
        self.solver = 'dense' if faithful else solver
        self.patch_size = self.backbone.patch_size
        for p in self.backbone.parameters():  # training-free
            p.requires_grad = False

    #: keys of a full segmentor checkpoint that TokenCut does not use; strict
    #: loading (vtseg.models.utils.checkpoint.fit_state_dict, every entry
    #: point) drops them with a log line instead of refusing the checkpoint
    ignored_checkpoint_prefixes = ('decode_head.', 'auxiliary_head.',
                                   'neck.')

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Accept a full segmentor checkpoint (its heads are dropped, with a
        log line) but refuse one without every ``backbone.*`` weight: a
        backbone-only file converted without ``--prefix backbone.`` would
        otherwise load nothing under mmengine's non-strict runner."""
        if prefix == '':
            dropped = [k for k in state_dict
                       if k.startswith(self.ignored_checkpoint_prefixes)]
            for k in dropped:
                del state_dict[k]
            if dropped:
                print_log(f'{type(self).__name__}: ignored {len(dropped)} '
                          'head weights of the checkpoint (training-free, '
                          'backbone only)', logger='current')
            own = [f'backbone.{k}' for k in self.backbone.state_dict()]
            missing = [k for k in own if k not in state_dict]
            if missing:
                raise CheckpointMismatchError(
                    f'{type(self).__name__}: the checkpoint lacks '
                    f'{len(missing)} of {len(own)} backbone weights (e.g. '
                    f'{missing[:3]}); TokenCut checkpoints need backbone.* '
                    'keys (convert with --prefix backbone.)')
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extract_feat(self, inputs: Tensor):
        """(B, 3, H, W) -> ((B, N, C) patch features, (h, w))."""
        with torch.no_grad():
            return extract_token_features(self.backbone, inputs, self.feature,
                                          self.layer, self.center)

    def loss(self, inputs, data_samples):
        raise NotImplementedError(
            f'{type(self).__name__} is training-free: use tools/test.py or '
            'the demos')

    def _check_size(self, hw, meta):
        p = self.patch_size
        if hw[0] < p or hw[1] < p:
            raise ValueError(
                f'image {meta.get("img_path", "<array>")} is {hw[0]}x{hw[1]} '
                f'pixels after the pipeline, smaller than one {p}x{p} patch')


@MODELS.register_module()
class TokenCut(_TokenCutBase):
    """TokenCut on any vtseg ViT (docs/methods/tokencut.md: image mode,
    saliency mode, requirements from users).

    Args:
        backbone: ViT config (weights through the test checkpoint or
            ``init_cfg``).
        mode: ``'discovery'`` (box + mask of the main object; full-resolution
            zero-padded input) or ``'saliency'`` (mask upsampled to the image,
            optionally refined with the bilateral solver).
        feature, layer, center: token features, see
            :func:`extract_token_features`. Reference: keys of the last block.
        tau, eps, binary_graph, solver: graph and eigen solver
            (:func:`vtseg.functional.ncut`).
        tau_candidates: optional list of taus; per image the tau whose cut is
            cheapest (smallest lambda_2) is used (vtseg extension, off).
        foreground: which side of every cut is the object
            (:mod:`vtseg.functional.ncut_foreground`): ``'reference'``
            (TokenCut's: the side of the eigenvector's largest |x|),
            ``'border'`` (the side holding fewer border tokens) or
            ``'smaller'``. The default was chosen by the tuning protocol
            (docs/protocol.md); ``faithful=True`` uses ``'reference'``.
        max_objects: > 1 returns several objects (:func:`ncut_multi`).
        multi_mode / multi_cfg: ``'recursive'`` or ``'components'`` and the
            stopping-rule options of :func:`vtseg.functional.ncut_multi`.
        bilateral_solver: None (off) or a dict of
            :func:`~vtseg.functional.bilateral_solver.bilateral_solve`
            options (``{}`` = TokenCut's settings) to refine the saliency map.
        faithful: the reference's behaviour: dense solver and, in saliency
            mode, the eigenvector without sign correction.
        train_cfg / test_cfg: accepted for mmseg API compatibility (unused).
    """

    def __init__(self,
                 backbone: dict,
                 mode: str = 'discovery',
                 feature: str = 'k',
                 layer: int = -1,
                 center: bool = False,
                 tau: float = 0.2,
                 eps: float = 1e-5,
                 binary_graph: bool = True,
                 solver: str = 'auto',
                 tau_candidates: Optional[Sequence[float]] = None,
                 foreground: str = DEFAULT_FOREGROUND,
                 max_objects: int = 1,
                 multi_mode: str = 'recursive',
                 multi_cfg: Optional[dict] = None,
                 bilateral_solver: Optional[dict] = None,
                 faithful: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(backbone, feature, layer, center, tau, eps,
                         binary_graph, solver, faithful, data_preprocessor,
                         init_cfg)
        if mode not in ('discovery', 'saliency'):
            raise ValueError(f"mode must be 'discovery' or 'saliency', got "
                             f'{mode!r}')
        if max_objects < 1:
            raise ValueError(f'max_objects must be >= 1, got {max_objects}')
        self.mode = mode
        check_foreground_rule(foreground,
                              where=f'{type(self).__name__}: foreground')
        self.foreground = 'reference' if faithful else foreground
        self.tau_candidates = list(tau_candidates) if tau_candidates else None
        self.max_objects = max_objects
        self.multi_mode = multi_mode
        self.multi_cfg = dict(multi_cfg or {})
        if bilateral_solver is not None:
            bilateral_solver = {**DEFAULT_BS, **bilateral_solver}
        self.bilateral_solver = bilateral_solver

    # -------------------------------------------------------------- cuts
    def cut_tokens(self, feats: Tensor, hw: Tuple[int, int]) -> List[Dict]:
        """Objects of one image from its (N, C) features: a list of dicts
        ``mask`` (h, w) bool, ``seed``, ``score``; the first one also has
        ``eigvec`` (h, w; sign-corrected, raw in faithful saliency mode),
        ``tau`` and ``eigval`` (lambda_2)."""
        tau = self._pick_tau(feats) if self.tau_candidates else self.tau
        w = ncut_affinity(feats, tau, self.eps, self.binary_graph)
        part, vec, seed, lam, flipped = ncut_from_affinity(
            w, self.solver, return_flip=True, foreground=self.foreground,
            border=border_tokens(hw))
        h, w_ = hw
        if self.max_objects > 1:
            cfg = {**MULTI_DEFAULTS, **self.multi_cfg}
            objs = ncut_multi_from_affinity(w, hw, part, vec, seed, lam,
                                            self.max_objects,
                                            self.multi_mode,
                                            solver=self.solver,
                                            foreground=self.foreground,
                                            **cfg)
        else:
            _, comp = ncut_box(part.reshape(h, w_), seed, self.patch_size)
            objs = [dict(mask=comp, seed=seed, score=1.0)]
        if self.faithful and self.mode == 'saliency' and flipped:
            vec = -vec  # the reference's saliency path skips the sign fix
        objs[0].update(eigvec=vec.reshape(h, w_), tau=tau, eigval=lam)
        return objs

    def _pick_tau(self, feats: Tensor) -> float:
        best, best_lam = self.tau_candidates[0], math.inf
        for tau in self.tau_candidates:
            w = ncut_affinity(feats, tau, self.eps, self.binary_graph)
            if is_uniform_graph(w):
                continue
            lam, _ = fiedler_vector(w, self.solver)
            if lam < best_lam:
                best, best_lam = tau, lam
        return best

    # ----------------------------------------------------------- predict
    def predict(self, inputs: Tensor, data_samples=None) -> List:
        """(B, 3, H, W) normalised, padded batch -> list of SegDataSample
        (see the module docstring)."""
        if data_samples is None:
            data_samples = [SegDataSample() for _ in range(inputs.shape[0])]
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            hs, ws = meta.get('img_shape', inputs.shape[-2:])[:2]
            meta.setdefault('img_shape', (hs, ws))
            meta.setdefault('ori_shape', (hs, ws))
            self._check_size((hs, ws), meta)
            # each image alone, cropped to its own size (batch-independent)
            feats, hw = self.extract_feat(inputs[i:i + 1, :, :hs, :ws])
            objs = self.cut_tokens(feats[0], hw)
            self._fill_sample(sample, objs, meta, inputs[i])
        return data_samples

    def _fill_sample(self, sample, objs, meta, image):
        p = self.patch_size
        img_shape = tuple(meta['img_shape'][:2])
        ori_shape = tuple(meta['ori_shape'][:2])
        sf = meta.get('scale_factor', (1.0, 1.0))
        masks, boxes = [], []
        for o in objs:
            box = component_box(o['mask'], p, img_shape)
            box = box / np.array([sf[0], sf[1], sf[0], sf[1]])
            box[0::2] = box[0::2].clip(0, ori_shape[1])
            box[1::2] = box[1::2].clip(0, ori_shape[0])
            boxes.append(box)
            masks.append(
                upsample_token_map(o['mask'], p, img_shape, ori_shape) > 0.5)
        dev = image.device
        inst = InstanceData()
        inst.bboxes = torch.as_tensor(np.stack(boxes), dtype=torch.float32,
                                      device=dev)
        inst.scores = torch.as_tensor([o['score'] for o in objs],
                                      dtype=torch.float32, device=dev)
        # class 1 = 'foreground' of the (background, foreground) metainfo
        inst.labels = torch.ones(len(objs), dtype=torch.long, device=dev)
        inst.masks = torch.from_numpy(np.stack(masks)).to(dev)
        sample.pred_instances = inst
        sample.set_metainfo(dict(seed=objs[0]['seed'], tau=objs[0]['tau']))
        eigvec = objs[0]['eigvec']
        sample.pred_eigvec = PixelData(
            data=torch.as_tensor(eigvec, dtype=torch.float32)[None].to(dev))
        if self.mode == 'saliency':
            soft = masks[0].astype(np.float64)
            if self.bilateral_solver is not None:
                rgb = _load_rgb(dict(meta), image,
                                self.data_preprocessor.mean,
                                self.data_preprocessor.std)
                if rgb.shape[:2] != ori_shape:
                    raise ValueError(
                        f'bilateral solver: image {meta.get("img_path")} is '
                        f'{rgb.shape[:2]}, expected ori_shape {ori_shape}')
                soft = bilateral_solve(rgb, soft, **self.bilateral_solver)
            soft = np.clip(soft, 0.0, 1.0)
            sample.seg_logits = PixelData(data=torch.as_tensor(
                soft, dtype=torch.float32)[None].to(dev))
            sample.pred_sem_seg = PixelData(data=torch.as_tensor(
                soft > 0.5, dtype=torch.long)[None].to(dev))
        else:
            union = np.any(np.stack(masks), axis=0)
            sample.seg_logits = PixelData(data=torch.as_tensor(
                masks[0], dtype=torch.float32)[None].to(dev))
            sample.pred_sem_seg = PixelData(data=torch.as_tensor(
                union, dtype=torch.long)[None].to(dev))

    def encode_decode(self, inputs: Tensor, batch_data_samples=None):
        """(B, 3, H, W) -> (B, 1, H, W) main-object masks at input size."""
        samples = self.predict(inputs, batch_data_samples)
        return torch.stack([s.seg_logits.data for s in samples])

    def _forward(self, inputs: Tensor, data_samples=None):
        return self.extract_feat(inputs)[0]


# ===================================================================== video
@MODELS.register_module()
class TokenCutVideo(_TokenCutBase):
    """TokenCut over the frames of a clip
    (docs/methods/tokencut.md#video-mode).

    One sparse graph over the tokens of up to ``max_frames`` frames
    (:func:`vtseg.functional.ncut_video`); optional optical-flow renderings
    (an input given as ``dict(frames=clip, flow=flow_clip)``) are fused with
    weight ``alpha``.

    Args:
        tau: 0.3 (the reference's video value). eps: implicit rank-one eps
            (1e-5; the reference has none, ``faithful=True``).
        edges_per_token: bound the graph to about this many edges per token
            by unbiased edge sampling (memory linear in frames); None = the
            reference's full thresholded graph (memory quadratic).
        frame_batch: frames per backbone forward.
        foreground: which side of the cut is the object, one of
            :data:`~vtseg.functional.ncut_foreground.VIDEO_FOREGROUND_RULES`
            (``'reference'``: the side of the largest |x|; ``'border'``,
            ``'smaller'``, ``'majority'``: per-frame border votes,
            ``'previous'``: per frame, agreement with the previous frame);
            default chosen by the tuning protocol (docs/protocol.md);
            ``faithful=True`` uses ``'reference'``.
        bilateral_solver: None or bilateral-solver options (per frame).
    """
    #: takes whole clips (see :func:`vtseg.apis.inference_video`)
    is_clip_model = True

    def __init__(self,
                 backbone: dict,
                 feature: str = 'k',
                 layer: int = -1,
                 center: bool = False,
                 tau: float = 0.3,
                 eps: float = 1e-5,
                 alpha: float = 0.5,
                 fusion: str = 'mean',
                 max_frames: int = 90,
                 edges_per_token: Optional[int] = None,
                 block_rows: Optional[int] = None,
                 frame_batch: int = 4,
                 solver: str = 'arpack',
                 foreground: str = DEFAULT_VIDEO_FOREGROUND,
                 bilateral_solver: Optional[dict] = None,
                 faithful: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='VideoDataPreProcessor')
        super().__init__(backbone, feature, layer, center, tau, eps, True,
                         'arpack', False, data_preprocessor, init_cfg)
        self.solver = solver if solver != 'dense' else 'arpack'
        self.faithful = faithful
        self.alpha = alpha
        self.fusion = fusion
        self.max_frames = max_frames
        self.edges_per_token = edges_per_token
        self.block_rows = block_rows
        self.frame_batch = frame_batch
        check_foreground_rule(foreground, video=True,
                              where=f'{type(self).__name__}: foreground')
        self.foreground = 'reference' if faithful else foreground
        if bilateral_solver is not None:
            bilateral_solver = {**DEFAULT_BS, **bilateral_solver}
        self.bilateral_solver = bilateral_solver

    def clip_features(self, frames: Tensor) -> Tuple[np.ndarray,
                                                      Tuple[int, int]]:
        """(T, 3, H, W) uint8 clip -> ((T, N, C) float32 features, (h, w)),
        ``frame_batch`` frames per forward."""
        if frames.ndim != 4 or frames.shape[0] == 0:
            raise ValueError('TokenCutVideo: expected a (T, 3, H, W) clip '
                             f'with T >= 1, got shape {tuple(frames.shape)}')
        hs, ws = frames.shape[-2:]
        self._check_size((hs, ws), {})
        out, hw = [], None
        for t0 in range(0, frames.shape[0], self.frame_batch):
            x = self.data_preprocessor.normalize(
                frames[t0:t0 + self.frame_batch])
            f, hw = self.extract_feat(x)
            out.append(f.float().cpu().numpy())
        return np.concatenate(out), hw

    def segment_clip(self, frames: Tensor, flow_frames: Optional[Tensor] = None
                     ) -> Tuple[np.ndarray, np.ndarray]:
        """(T, 3, H, W) uint8 -> (foreground (T, h, w) bool, eigvec)."""
        feats, hw = self.clip_features(frames)
        flow = None
        if flow_frames is not None:
            flow, hw_f = self.clip_features(flow_frames)
            if hw_f != hw or len(flow) != len(feats):
                raise ValueError(f'flow renderings give {len(flow)} frames '
                                 f'of {hw_f} tokens, frames {len(feats)} of '
                                 f'{hw}')
        return ncut_video(feats, hw, flow, self.alpha, self.tau, self.eps,
                          self.fusion, self.max_frames, self.edges_per_token,
                          self.block_rows, self.solver, self.faithful,
                          self.foreground)

    def predict(self, inputs, data_samples=None) -> List:
        """``inputs``: list of (T, 3, H, W) uint8 clips (one per sample; or
        dicts ``frames`` / ``flow`` with flow renderings of the same shape) ->
        one SegDataSample per clip with ``pred_sem_seg`` (T, H0, W0) masks at
        the original frame size and ``seg_logits`` (T, H0, W0) in [0, 1]."""
        if isinstance(inputs, Tensor) and inputs.ndim == 4:
            inputs = [inputs]
        if data_samples is None:
            data_samples = [SegDataSample() for _ in inputs]
        for clip, sample in zip(inputs, data_samples):
            meta = sample.metainfo
            flow = None
            if isinstance(clip, dict):  # dict(frames=..., flow=...)
                clip, flow = clip['frames'], clip.get('flow')
            fg, _ = self.segment_clip(clip, flow)
            img_shape = tuple(clip.shape[-2:])
            ori_shape = tuple(meta.get('ori_shape', img_shape)[:2])
            soft = np.stack([
                upsample_token_map(m, self.patch_size, img_shape, ori_shape)
                for m in fg
            ])
            if self.bilateral_solver is not None:
                paths = meta.get('img_paths')
                for t in range(len(soft)):
                    if paths:
                        rgb = np.asarray(Image.open(paths[t]).convert('RGB'))
                    else:
                        rgb = _load_rgb(
                            dict(img_shape=img_shape, ori_shape=ori_shape),
                            self.data_preprocessor.normalize(clip[t:t + 1])[0],
                            self.data_preprocessor.mean,
                            self.data_preprocessor.std)
                    soft[t] = np.clip(
                        bilateral_solve(rgb, soft[t], **self.bilateral_solver),
                        0, 1)
            sample.seg_logits = PixelData(
                data=torch.as_tensor(soft, dtype=torch.float32))
            sample.pred_sem_seg = PixelData(
                data=torch.as_tensor(soft > 0.5, dtype=torch.uint8))
        return data_samples

    def encode_decode(self, inputs, batch_data_samples=None):
        return [s.seg_logits.data
                for s in self.predict(inputs, batch_data_samples)]

    def _forward(self, inputs, data_samples=None):
        return [self.clip_features(c)[0] for c in inputs]
