"""ToCo: token contrast for weakly supervised semantic segmentation from
image-level labels (CVPR 2023; docs/toco.md).

One training step (:meth:`ToCoSegmentor.loss`), all pseudo labels without
gradients:

1. multi-scale + flip CAMs of the final and the auxiliary layer
   (:meth:`ToCoSegmentor.multi_scale_cam`);
2. ROI codes from the auxiliary CAM, local crops from the uncertain region
   and their positive / negative flags (:func:`select_local_crops`);
3. the student encodes the main view, a second global view (a random
   resized crop) and the local crops; the cls tokens go through the
   projection head, the teacher (mmengine's
   :class:`~mmengine.model.ExponentialMovingAverage` of that head) projects
   the detached cls tokens of the two global views (CTC);
4. PTC on the final patch tokens with the affinity of the auxiliary CAM's
   token labels;
5. the LargeFOV head learns the PAR-refined pseudo labels of the final CAM
   (balanced CE) once the iteration counter passes ``seg_start_iter``.

The image-level labels come in ``data_sample.metainfo['img_labels']``
((K - 1,) 0/1, see :class:`~vtseg.datasets.VOCImageLabelDataset`).

Prediction (``test_cfg.output``): ``'seg'`` (the head, multi-scale + flip
as the reference: flip logits added, max over scales), ``'cam'`` /
``'aux_cam'`` (multi-scale CAM -> :func:`cam_to_label` with ``bkg_thre``;
needs ``img_labels``), ``'par'`` (the PAR-refined pseudo label, 255 =
uncertain).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import ExponentialMovingAverage
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from torch import Tensor

from vtseg.functional.toco import (cam_to_label, cam_to_roi_mask,
                                   extract_crops, fuse_refined_labels,
                                   label_to_affinity, normalize_cam,
                                   refine_cams_with_background,
                                   select_local_crops, token_box)
from vtseg.registry import MODELS

__all__ = ['ToCoSegmentor']

OUTPUTS = ('seg', 'cam', 'aux_cam', 'par')


def _scaled_batch(inputs: Tensor, scale: float, flip: bool) -> Tensor:
    """(B, C, H, W) -> the batch resized by ``scale`` (bilinear), followed
    by its horizontal flip when ``flip`` ((2B, C, h, w)): one forward for
    an image and its mirror in multi-scale inference."""
    H, W = inputs.shape[-2:]
    x = inputs if scale == 1.0 else F.interpolate(
        inputs, size=(int(scale * H), int(scale * W)), mode='bilinear',
        align_corners=False)
    return torch.cat([x, x.flip(-1)]) if flip else x


@MODELS.register_module()
class ToCoSegmentor(BaseSegmentor):
    """Single-stage WSSS with a plain ViT, CAMs, PTC / CTC and a LargeFOV
    segmentation head.

    Args:
        backbone: a vtseg ``ViT`` config with a cls token.
        decode_head: the segmentation head (``LargeFOVHead``), ``num_classes``
            = K (background included).
        proj_head: the CTC projection head (``DINOProjHead``).
        aux_layer: block whose output (before the final norm) gives the
            auxiliary CAM (-3: block 9 of 12, VOC; 9 for COCO).
        loss_cls / loss_aux / loss_ptc / loss_ctc / loss_seg: loss weights
            are in ``loss_ptc`` (``PTCLoss``), ``loss_ctc`` (``CTCLoss``),
            ``loss_seg`` (``BalancedSegLoss``); ``cls_weight`` /
            ``aux_weight`` weigh the two multi-label soft-margin losses.
            A weight of 0 skips that branch entirely (no views, no crops):
            ``aux_weight=0, loss_ptc.loss_weight=0, loss_ctc.loss_weight=0``
            is the plain-CAM baseline.
        ema_momentum: teacher update ``t <- (1 - m) t + m s`` (mmengine's
            convention; the reference's momentum 0.9 is m = 0.1).
        cam_scales: scales of the training-time multi-scale CAM.
        bkg_thre / high_thre / low_thre: VOC 0.5 / 0.7 / 0.25, COCO
            0.45 / 0.65 / 0.25.
        num_local_crops / local_crop_size / neg_ratio: 8 / 96 / 0.2.
        view_scale: area range of the second global view's random resized
            crop (0.4, 1.0).
        seg_start_iter: the segmentation loss is on when the iteration
            counter (0-based) is > this (VOC 2000).
        contrast_start_iter: PTC and CTC are on when the counter is > this
            (VOC -1 = always, COCO 12000).
        aux_label_until: while the counter is <= this, the segmentation
            pseudo labels come from the auxiliary CAM (COCO 12000; -1 never).
        par: PAR config (``dilations``, ``num_iter``).
        freeze_pos_embed: the reference freezes the position table.
        faithful: reproduce the reference's quirks: the PTC token labels are
            masked with the pixel box taken as token indices (quirk 1 in
            docs/toco.md), and the segmentation loss is NaN on crops without
            background or foreground.
        seed: seed of the generator used for the crops and views (the
            reference uses the global generator; vtseg keeps its own so that
            a step is reproducible).
        test_cfg: ``output`` (one of ``'seg'``, ``'cam'``, ``'aux_cam'``,
            ``'par'``), ``scales`` (inference scales, default (1.0,) for
            'seg' and ``cam_scales`` for CAMs; ``seg_scales`` /
            ``cam_scales`` override it per kind), ``flip`` (True),
            ``base_size`` ((h, w) the image is resized to before the scales;
            None = as given; the reference uses 448 x 448 for CAMs).
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 proj_head: Optional[dict] = None,
                 aux_layer: int = -3,
                 cls_weight: float = 1.0,
                 aux_weight: float = 1.0,
                 loss_ptc: Optional[dict] = None,
                 loss_ctc: Optional[dict] = None,
                 loss_seg: Optional[dict] = None,
                 ema_momentum: float = 0.1,
                 cam_scales: Sequence[float] = (1.0, 0.5, 1.5),
                 bkg_thre: float = 0.5,
                 high_thre: float = 0.7,
                 low_thre: float = 0.25,
                 num_local_crops: int = 8,
                 local_crop_size: int = 96,
                 neg_ratio: float = 0.2,
                 view_scale: Tuple[float, float] = (0.4, 1.0),
                 seg_start_iter: int = 2000,
                 contrast_start_iter: int = -1,
                 aux_label_until: int = -1,
                 par: Optional[dict] = None,
                 freeze_pos_embed: bool = True,
                 faithful: bool = False,
                 seed: int = 0,
                 ignore_index: int = 255,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if not self.backbone.with_cls_token:
            raise ValueError('ToCo needs a backbone with a cls token')
        self.decode_head = MODELS.build(decode_head)
        self.num_classes = self.decode_head.num_classes
        self.align_corners = False
        self.out_channels = self.num_classes
        dims = self.backbone.embed_dims
        nfg = self.num_classes - 1
        self.classifier = nn.Conv2d(dims, nfg, 1, bias=False)
        self.aux_classifier = nn.Conv2d(dims, nfg, 1, bias=False)
        self.aux_layer = aux_layer % self.backbone.depth
        self.last_layer = self.backbone.depth - 1
        self.proj_head = MODELS.build(
            proj_head or dict(type='DINOProjHead', in_dims=dims))
        self.proj_head_t = ExponentialMovingAverage(self.proj_head,
                                                    momentum=ema_momentum)
        self.cls_weight = cls_weight
        self.aux_weight = aux_weight
        self.loss_ptc = MODELS.build(loss_ptc or dict(type='PTCLoss'))
        self.loss_ctc = MODELS.build(loss_ctc or dict(type='CTCLoss'))
        self.loss_seg = MODELS.build(
            loss_seg or dict(type='BalancedSegLoss', faithful=faithful))
        self.cam_scales = tuple(cam_scales)
        self.bkg_thre, self.high_thre, self.low_thre = (bkg_thre, high_thre,
                                                        low_thre)
        self.num_local_crops = num_local_crops
        self.local_crop_size = local_crop_size
        self.neg_ratio = neg_ratio
        self.view_scale = tuple(view_scale)
        self.seg_start_iter = seg_start_iter
        self.contrast_start_iter = contrast_start_iter
        self.aux_label_until = aux_label_until
        self.par_cfg = dict(dilations=(1, 2, 4, 8, 12, 24), num_iter=10)
        self.par_cfg.update(par or {})
        self.freeze_pos_embed = freeze_pos_embed
        if freeze_pos_embed:
            self.backbone.pos_embed.requires_grad_(False)
        self.faithful = faithful
        self.seed = seed
        self.ignore_index = ignore_index
        self.generator = torch.Generator().manual_seed(seed)
        # iteration counter (saved with the weights, so --resume continues
        # the loss schedule)
        self.register_buffer('iter', torch.zeros((), dtype=torch.long))
        self.train_cfg = train_cfg or {}
        self.test_cfg = test_cfg or {}
        out = self.test_cfg.get('output', 'seg')
        if out not in OUTPUTS:
            raise ValueError(f'test_cfg.output must be one of {OUTPUTS}, '
                             f'got {out!r}')

    # ------------------------------------------------------------ encoder
    def encode(self, inputs: Tensor,
               need_aux: bool = True) -> Dict[str, Tensor]:
        """Encoder outputs: ``cls`` (B, C) cls token after the final norm,
        ``final`` (B, C, h, w) patch tokens after it, ``aux`` (B, C, h, w)
        output of ``aux_layer`` before it (if ``need_aux``)."""
        out = self.backbone.forward_features(
            inputs, token_layers=[self.aux_layer] if need_aux else [])
        final = out['outs'][-1]
        grid = out['grid']
        norm = self.backbone.norm
        cls = grid.x[:, 0]
        res = dict(cls=norm(cls) if norm is not None else cls, final=final)
        if need_aux:
            h, w = out['hw']
            tok = out['tokens'][self.aux_layer][:, out['n_prefix']:]
            res['aux'] = tok.transpose(1, 2).reshape(tok.shape[0], -1, h, w)
        return res

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        return [self.encode(inputs, need_aux=False)['final']]

    def cams_of(self, feats: Dict[str, Tensor]) -> Tuple[Tensor, Tensor]:
        """Raw (no ReLU) final and auxiliary CAMs (B, K', h, w)."""
        cam = F.conv2d(feats['final'], self.classifier.weight)
        aux = F.conv2d(feats['aux'], self.aux_classifier.weight)
        return cam, aux

    @torch.no_grad()
    def classify(self, inputs: Tensor) -> Tensor:
        """Image-level class logits (B, K') of the final classifier (global
        max pooling); a class is predicted present where its logit > 0."""
        feats = self.encode(inputs, need_aux=False)
        return self.classifier(F.adaptive_max_pool2d(feats['final'],
                                                     1)).flatten(1)

    @torch.no_grad()
    def multi_scale_cam(self, inputs: Tensor,
                        scales: Optional[Sequence[float]] = None,
                        flip: bool = True) -> Tuple[Tensor, Tensor]:
        """Multi-scale (+ flip) CAMs at the input size, normalised to
        [0, 1] per image and class: at each scale the image (and its flip)
        are encoded, the CAMs upsampled bilinearly, the flipped one flipped
        back and the two combined by max, then ReLU; sum over scales, then
        :func:`normalize_cam`. Returns (cam, aux_cam), each (B, K', H, W)."""
        B, _, H, W = inputs.shape
        scales = self.cam_scales if scales is None else scales
        total_c, total_a = 0, 0
        for s in scales:
            cam, aux = self.cams_of(self.encode(_scaled_batch(inputs, s,
                                                              flip)))
            cam = F.interpolate(cam, size=(H, W), mode='bilinear',
                                align_corners=False)
            aux = F.interpolate(aux, size=(H, W), mode='bilinear',
                                align_corners=False)
            if flip:
                cam = torch.max(cam[:B], cam[B:].flip(-1))
                aux = torch.max(aux[:B], aux[B:].flip(-1))
            total_c = total_c + F.relu(cam)
            total_a = total_a + F.relu(aux)
        return normalize_cam(total_c), normalize_cam(total_a)

    # -------------------------------------------------------------- helpers
    def denormalize(self, inputs: Tensor) -> Tensor:
        """Normalised inputs -> 0-255 RGB (the data preprocessor's mean /
        std)."""
        pre = self.data_preprocessor
        return inputs * pre.std + pre.mean

    def image_labels(self, data_samples) -> Tensor:
        """(B, K') image-level labels from ``metainfo['img_labels']``."""
        labels = []
        for ds in data_samples:
            lab = ds.metainfo.get('img_labels')
            if lab is None:
                raise KeyError(
                    f"ToCo needs metainfo['img_labels'] (image-level labels)"
                    f", missing for {ds.metainfo.get('img_path', '?')}; use "
                    "a dataset that provides them (VOCImageLabelDataset) and "
                    "PackSegInputs(meta_keys=(..., 'img_labels'))")
            labels.append(torch.as_tensor(lab, dtype=torch.float32))
        labels = torch.stack(labels).to(self.classifier.weight.device)
        if labels.shape[1] != self.num_classes - 1:
            raise ValueError(f'img_labels have {labels.shape[1]} classes, '
                             f'the model {self.num_classes - 1}')
        return labels

    @staticmethod
    def valid_boxes(data_samples, device) -> Tensor:
        """(B, 4) [0, h, 0, w] boxes of the unpadded image in the batch."""
        boxes = [[0, ds.metainfo['img_shape'][0], 0,
                  ds.metainfo['img_shape'][1]] for ds in data_samples]
        return torch.tensor(boxes, dtype=torch.long, device=device)

    def random_resized_view(self, inputs: Tensor) -> Tensor:
        """Second global view: per image a random crop of area fraction in
        ``view_scale`` and aspect ratio in [3/4, 4/3], resized back to the
        input size (bicubic sampling), flipped with probability 0.5.
        Batched through ``affine_grid`` / ``grid_sample``."""
        B, _, H, W = inputs.shape
        g = self.generator
        r = torch.rand(B, 5, generator=g)
        area = self.view_scale[0] + r[:, 0] * (self.view_scale[1] -
                                               self.view_scale[0])
        log_ratio = math.log(3 / 4) + r[:, 1] * (math.log(4 / 3) -
                                                 math.log(3 / 4))
        ratio = torch.exp(log_ratio)
        sw = torch.sqrt(area * ratio).clamp(max=1.0)  # width fraction
        sh = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (r[:, 2] * 2 - 1) * (1 - sw)
        cy = (r[:, 3] * 2 - 1) * (1 - sh)
        flip = torch.where(r[:, 4] < 0.5, -1.0, 1.0)
        theta = torch.zeros(B, 2, 3)
        theta[:, 0, 0] = sw * flip
        theta[:, 0, 2] = cx
        theta[:, 1, 1] = sh
        theta[:, 1, 2] = cy
        grid = F.affine_grid(theta.to(inputs), list(inputs.shape),
                             align_corners=False)
        return F.grid_sample(inputs, grid, mode='bicubic',
                             padding_mode='zeros', align_corners=False)

    @torch.no_grad()
    def pseudo_label(self, inputs: Tensor, cam: Tensor, labels: Tensor,
                     boxes: Optional[Tensor]) -> Tensor:
        """PAR-refined segmentation pseudo label (B, H, W): ``cam_to_label``
        with ``ignore_mid`` gives the label-masked CAM, refined with a
        constant background of ``high_thre`` and of ``low_thre`` and fused
        (255 = uncertain or outside the box)."""
        valid_cam = cam * labels[:, :, None, None]
        images = self.denormalize(inputs)
        hi = refine_cams_with_background(images, valid_cam, labels,
                                         self.high_thre, **self.par_cfg)
        lo = refine_cams_with_background(images, valid_cam, labels,
                                         self.low_thre, **self.par_cfg)
        return fuse_refined_labels(hi, lo, boxes, self.ignore_index)

    def ptc_token_box(self, boxes: Tensor, hw: Tuple[int, int]) -> Tensor:
        """Token-unit box for the PTC labels (default: a token is inside
        when its patch centre is; faithful: the pixel box used as token
        indices, the reference's bug)."""
        if self.faithful:
            return boxes
        return token_box(boxes.cpu(), self.backbone.patch_size,
                         hw).to(boxes.device)

    # --------------------------------------------------------------- train
    def loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        it = int(self.iter)
        self.iter += 1
        labels = self.image_labels(data_samples)
        boxes = self.valid_boxes(data_samples, inputs.device)
        B = inputs.shape[0]
        w_ptc = self.loss_ptc.loss_weight
        w_ctc = self.loss_ctc.loss_weight
        contrast_on = it > self.contrast_start_iter
        seg_on = it > self.seg_start_iter and self.loss_seg.loss_weight > 0
        use_ptc = w_ptc > 0 and contrast_on
        use_ctc = w_ctc > 0 and contrast_on
        need_aux = self.aux_weight > 0 or use_ptc or use_ctc

        losses = {}
        if use_ctc or use_ptc or seg_on:
            was_training = self.training
            self.eval()  # pseudo labels without dropout / drop path
            cam, cam_aux = self.multi_scale_cam(inputs)
            self.train(was_training)

        feats = self.encode(inputs, need_aux=need_aux)
        logit = F.adaptive_max_pool2d(feats['final'], 1)
        logit = self.classifier(logit).flatten(1)
        losses['loss_cls'] = self.cls_weight * \
            F.multilabel_soft_margin_loss(logit, labels)
        if self.aux_weight > 0:
            logit_aux = self.aux_classifier(
                F.adaptive_max_pool2d(feats['aux'], 1)).flatten(1)
            losses['loss_aux'] = self.aux_weight * \
                F.multilabel_soft_margin_loss(logit_aux, labels)

        if use_ctc:
            with torch.no_grad():
                roi = cam_to_roi_mask(cam_aux, labels, self.high_thre,
                                      self.low_thre)
                coords, flags = select_local_crops(
                    roi, self.num_local_crops, self.local_crop_size,
                    self.neg_ratio, self.generator)
                crops = extract_crops(inputs, coords.to(inputs.device),
                                      self.local_crop_size)
                view1 = self.random_resized_view(inputs)
            cls_v1 = self.encode(view1, need_aux=False)['cls']
            cls_loc = self.encode(crops, need_aux=False)['cls']
            global_cls = torch.cat([feats['cls'], cls_v1])  # view-major
            self.proj_head_t.update_parameters(self.proj_head)
            with torch.no_grad():
                teacher = self.proj_head_t(global_cls.detach())
            student = self.proj_head(torch.cat([global_cls, cls_loc]))
            losses['loss_ctc'] = self.loss_ctc(student, teacher,
                                               flags.to(inputs.device))

        if use_ptc:
            with torch.no_grad():
                hw = feats['final'].shape[-2:]
                small = F.interpolate(cam_aux, size=hw, mode='bilinear',
                                      align_corners=False)
                tok_label = cam_to_label(
                    small, labels, self.bkg_thre, self.high_thre,
                    self.low_thre, ignore_mid=True,
                    valid_box=self.ptc_token_box(boxes, tuple(hw)),
                    ignore_index=self.ignore_index)
                aff = label_to_affinity(tok_label, self.ignore_index)
            losses['loss_ptc'] = self.loss_ptc(feats['final'], aff)

        seg = self.decode_head([feats['final']])
        if seg_on:
            src = cam_aux if it <= self.aux_label_until else cam
            target = self.pseudo_label(inputs, src, labels, boxes)
            seg = F.interpolate(seg, size=inputs.shape[-2:],
                                mode='bilinear', align_corners=False)
            losses['loss_seg'] = self.loss_seg(seg, target)
        else:
            # keeps the head in the graph (DDP without unused parameters)
            losses['loss_seg'] = seg.sum() * 0.0
        return losses

    # ------------------------------------------------------------- predict
    def _forward(self, inputs: Tensor, data_samples=None) -> Tensor:
        return self.decode_head([self.encode(inputs, need_aux=False)
                                 ['final']])

    def encode_decode(self, inputs: Tensor, batch_img_metas) -> Tensor:
        seg = self._forward(inputs)
        return F.interpolate(seg, size=inputs.shape[-2:], mode='bilinear',
                             align_corners=False)

    @torch.no_grad()
    def seg_logits(self, inputs: Tensor,
                   scales: Sequence[float] = (1.0,),
                   flip: bool = True) -> Tensor:
        """Segmentation logits (B, K, H, W) at the input size: at each
        scale the logits plus the flipped-back logits of the flipped input
        (upsampled bilinearly), then the element-wise max over scales (the
        reference's multi-scale inference)."""
        B, _, H, W = inputs.shape
        out = None
        for s in scales:
            seg = F.interpolate(self._forward(_scaled_batch(inputs, s, flip)),
                                size=(H, W),
                                mode='bilinear', align_corners=False)
            if flip:
                seg = seg[:B] + seg[B:].flip(-1)
            out = seg if out is None else torch.max(out, seg)
        return out

    def predict_labels(self, inputs: Tensor, data_samples,
                       outputs: Sequence[str] = ('seg',)
                       ) -> Dict[str, List[Tensor]]:
        """Per-image label maps at ``ori_shape`` for several outputs from
        one encoder pass per scale: {output: [(H_i, W_i) int64, ...]}
        (``'cam'`` / ``'aux_cam'``: :func:`cam_to_label` with ``bkg_thre``
        on the label-masked multi-scale CAM; ``'par'``: the PAR-refined
        pseudo label, 255 = uncertain; ``'seg'``: the head's arg-max).
        Also returns the (K', H_i, W_i) CAMs under ``'cam_maps'`` /
        ``'aux_cam_maps'`` and the (K, H_i, W_i) logits under
        ``'seg_logits'`` when those outputs are asked for. Uses
        ``test_cfg`` ``scales`` / ``flip`` / ``base_size``."""
        bad = set(outputs) - set(OUTPUTS)
        if bad:
            raise ValueError(f'unknown outputs {sorted(bad)}; choose from '
                             f'{OUTPUTS}')
        cfg = self.test_cfg
        flip = cfg.get('flip', True)
        base = cfg.get('base_size')
        x = inputs if base is None else F.interpolate(
            inputs, size=tuple(base), mode='bilinear', align_corners=False)
        maps = {}
        if 'seg' in outputs:
            maps['seg'] = self.seg_logits(x, cfg.get('seg_scales',
                                                     cfg.get('scales',
                                                             (1.0,))), flip)
        if set(outputs) & {'cam', 'aux_cam', 'par'}:
            labels = self.image_labels(data_samples)
            cam, aux = self.multi_scale_cam(
                x, cfg.get('cam_scales', cfg.get('scales', self.cam_scales)),
                flip)
            maps['cam'] = cam * labels[:, :, None, None]
            maps['aux_cam'] = aux * labels[:, :, None, None]
        res: Dict[str, List[Tensor]] = {o: [] for o in outputs}
        for key in ('seg_logits', 'cam_maps', 'aux_cam_maps'):
            res[key] = []
        for i, ds in enumerate(data_samples):
            h, w = ds.metainfo['img_shape'][:2]
            oh, ow = ds.metainfo.get('ori_shape', (h, w))[:2]

            def restore(m):
                if base is not None:
                    m = F.interpolate(m, size=inputs.shape[-2:],
                                      mode='bilinear', align_corners=False)
                return F.interpolate(m[..., :h, :w], size=(oh, ow),
                                     mode='bilinear', align_corners=False)

            if 'seg' in outputs:
                m = restore(maps['seg'][i:i + 1])
                res['seg'].append(m.argmax(1)[0])
                res['seg_logits'].append(m[0])
            for o in ('cam', 'aux_cam'):
                if o in outputs or (o == 'cam' and 'par' in outputs):
                    m = restore(maps[o][i:i + 1])
                    res[o + '_maps'].append(m[0])
                    if o in outputs:
                        res[o].append(cam_to_label(
                            m, labels[i:i + 1], self.bkg_thre,
                            ignore_index=self.ignore_index)[0])
            if 'par' in outputs:
                img = F.interpolate(inputs[i:i + 1, :, :h, :w],
                                    size=(oh, ow), mode='bilinear',
                                    align_corners=False)
                res['par'].append(self.pseudo_label(
                    img, res['cam_maps'][-1][None], labels[i:i + 1],
                    None)[0])
        return res

    def predict(self, inputs: Tensor, data_samples=None):
        output = self.test_cfg.get('output', 'seg')
        if data_samples is None:
            if output != 'seg':
                raise ValueError(f"output={output!r} needs data_samples "
                                 "with metainfo['img_labels']")
            return self.seg_logits(
                inputs, self.test_cfg.get('seg_scales',
                                          self.test_cfg.get('scales',
                                                            (1.0,))),
                self.test_cfg.get('flip', True))
        res = self.predict_labels(inputs, data_samples, (output,))
        logits = res['seg_logits'] if output == 'seg' else \
            res['aux_cam_maps'] if output == 'aux_cam' else res['cam_maps']
        for i, ds in enumerate(data_samples):
            ds.set_data(dict(seg_logits=PixelData(data=logits[i]),
                             pred_sem_seg=PixelData(
                                 data=res[output][i][None])))
        return data_samples
