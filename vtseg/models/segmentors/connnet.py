"""EncoderDecoder with salient instances from a connectivity head."""
from typing import Optional

import numpy as np
import torch
from mmengine.structures import InstanceData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.utils import OptSampleList, SampleList
from scipy import ndimage
from torch import Tensor

from vtseg.functional.connectivity import bilateral_voting, split_instances
from vtseg.registry import MODELS

__all__ = ['ConnNetSegmentor', 'instances_from_connectivity']


def instances_from_connectivity(conn_prob: Tensor,
                                fg_threshold: float = 0.5,
                                link_threshold: Optional[float] = None,
                                min_area: int = 0,
                                fill_unassigned: bool = True,
                                split: str = 'links',
                                max_instances: Optional[int] = None
                                ) -> InstanceData:
    """Instances of one image from its link probabilities.

    Args:
        conn_prob: (8, H, W) dilation-1 link probabilities of one class at
            the output size (more channels: the first 8 are used).
        fg_threshold, link_threshold, min_area, fill_unassigned: see
            :func:`vtseg.functional.split_instances`.
        split: ``'links'`` (default): connected components of confirmed
            links; ``'mask_components'``: 8-connected components of the
            decoded foreground (ablation: ignores which links are cut).
        max_instances: keep the highest-scoring ones (None: all).

    Returns:
        InstanceData with ``masks`` (n, H, W) bool, ``bboxes`` (n, 4) float
        (x1, y1, x2, y2), pixel-edge coordinates (x2 = last column + 1),
        ``scores`` (n,) (mean voted map over the mask) and ``labels`` (n,)
        zeros, sorted by score.
    """
    H, W = conn_prob.shape[-2:]
    if split == 'links':
        labels, scores = split_instances(conn_prob, fg_threshold,
                                         link_threshold, min_area,
                                         fill_unassigned)
    elif split == 'mask_components':
        fmap = bilateral_voting(conn_prob[None, :8].float())[0, 0].cpu()
        fmap = fmap.numpy()
        labels, n = ndimage.label(fmap > fg_threshold,
                                  structure=np.ones((3, 3), int))
        if min_area > 0 and n:
            areas = ndimage.sum(np.ones_like(fmap), labels,
                                np.arange(1, n + 1))
            small = np.flatnonzero(areas < min_area) + 1
            labels[np.isin(labels, small)] = 0
            labels, n = ndimage.label(labels > 0,
                                      structure=np.ones((3, 3), int))
        scores = np.asarray(
            ndimage.mean(fmap, labels, np.arange(1, n + 1)) if n else [],
            np.float32)
    else:
        raise ValueError("split must be 'links' or 'mask_components', got "
                         f'{split!r}')
    n = len(scores)
    order = np.argsort(-scores, kind='stable')
    if max_instances is not None:
        order = order[:max_instances]
    device = conn_prob.device
    ids = torch.from_numpy(labels.astype(np.int64)).to(device)
    keep = torch.as_tensor(order + 1, device=device, dtype=torch.long)
    masks = ids[None] == keep[:, None, None] if n else torch.zeros(
        0, H, W, dtype=torch.bool, device=device)
    bboxes = torch.zeros(len(keep), 4, device=device)
    for i, m in enumerate(masks):
        ys = torch.nonzero(m.any(1)).flatten()
        xs = torch.nonzero(m.any(0)).flatten()
        bboxes[i] = torch.stack([xs[0], ys[0], xs[-1] + 1,
                                 ys[-1] + 1]).float()
    inst = InstanceData()
    inst.masks = masks
    inst.bboxes = bboxes
    inst.scores = torch.as_tensor(scores[order], device=device)
    # label 1: the foreground class of the binary dataset meta (0 is
    # background), as TokenCut
    inst.labels = torch.ones(len(keep), dtype=torch.long, device=device)
    return inst


@MODELS.register_module()
class ConnNetSegmentor(EncoderDecoder):
    """:class:`mmseg.models.EncoderDecoder` whose decode head is a one-class
    :class:`~vtseg.models.decode_heads.ConnNetHead`; at test time it also
    splits the foreground into instances from the connectivity graph and
    stores them as ``data_sample.pred_instances`` (masks at the original
    image size, boxes, scores, labels = 1, the foreground class).

    Semantic outputs are exactly those of ``EncoderDecoder`` (``seg_logits``
    = the voted map F, ``pred_sem_seg`` = F > threshold). Instance settings
    live in ``test_cfg``:

    - ``instances`` (True): compute ``pred_instances``;
    - ``fg_threshold`` (0.5), ``link_threshold`` (None = fg_threshold),
      ``min_area`` (0 px at the original size), ``fill_unassigned``
      (True), ``split`` (``'links'``), ``max_instances`` (None): see
      :func:`instances_from_connectivity`.

    Instances need whole-image inference without flip (the link channels
    would have to be permuted under a flip); other settings raise.
    """

    def _instance_cfg(self) -> dict:
        cfg = self.test_cfg or {}
        return dict(
            fg_threshold=cfg.get('fg_threshold', 0.5),
            link_threshold=cfg.get('link_threshold', None),
            min_area=cfg.get('min_area', 0),
            fill_unassigned=cfg.get('fill_unassigned', True),
            split=cfg.get('split', 'links'),
            max_instances=cfg.get('max_instances', None))

    def predict(self, inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        if not (self.test_cfg or {}).get('instances', True):
            return super().predict(inputs, data_samples)
        if self.test_cfg.get('mode', 'whole') != 'whole':
            raise ValueError("ConnNetSegmentor: instances need "
                             "test_cfg.mode='whole' (got "
                             f"{self.test_cfg.get('mode')!r}); set "
                             'test_cfg.instances=False for slide inference')
        if getattr(self.decode_head, 'num_conn_classes', None) != 1:
            raise ValueError('ConnNetSegmentor: instances need a one-class '
                             'ConnNetHead (num_classes=2, out_channels=1)')
        if data_samples is not None:
            metas = [s.metainfo for s in data_samples]
        else:
            metas = [
                dict(ori_shape=inputs.shape[2:], img_shape=inputs.shape[2:],
                     pad_shape=inputs.shape[2:], padding_size=[0, 0, 0, 0])
            ] * inputs.shape[0]
        feats = self.extract_feat(inputs)
        conn = self.decode_head.forward(feats)
        seg_logits = self.decode_head.predict_by_feat(conn, metas)
        results = self.postprocess_result(seg_logits, data_samples)
        conn = resize(conn, size=seg_logits.shape[-2:], mode='bilinear',
                      align_corners=self.align_corners)
        cfg = self._instance_cfg()
        dilations = tuple(getattr(self.decode_head, 'dilations', (1, )))
        if 1 not in dilations:
            raise ValueError('ConnNetSegmentor: instances are split on the '
                             'dilation-1 links, but the head predicts '
                             f'dilations {dilations}')
        j = dilations.index(1)
        H, W = seg_logits.shape[-2:]
        for i, (res, meta) in enumerate(zip(results, metas)):
            c = conn[i:i + 1]
            if data_samples is not None:
                if meta.get('flip', False):
                    raise ValueError('ConnNetSegmentor: instances are not '
                                     'defined under flip test-time '
                                     'augmentation')
                pad = meta.get('img_padding_size',
                               meta.get('padding_size', [0] * 4))
                left, right, top, bottom = pad
                c = c[..., top:H - bottom, left:W - right]
                c = resize(c, size=meta['ori_shape'], mode='bilinear',
                           align_corners=self.align_corners)
            prob = c[0, j * 8:(j + 1) * 8].float().sigmoid()
            res.pred_instances = instances_from_connectivity(prob, **cfg)
        return results
