"""Mask R-CNN with mirrored test-time masks (mmdet has no mask TTA)."""
import warnings
from typing import List, Sequence, Tuple

import torch
from mmdet.models.detectors import MaskRCNN
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi, bbox_flip
from torch import Tensor

from vtseg.registry import MODELS

__all__ = ['MaskFlipRCNN', 'mirror_images']


def mirror_images(inputs: Tensor, img_shapes: Sequence[Tuple[int, int]]
                  ) -> Tensor:
    """Mirror each image of a padded batch left-right inside its own
    (h, w) region, so its padding stays at the bottom / right as in
    training.

    Args:
        inputs: (B, C, H_pad, W_pad) batch.
        img_shapes: (h, w) of each image, h <= H_pad, w <= W_pad.

    Returns:
        (B, C, H_pad, W_pad) batch; pixel (y, x) of image b, x < w_b, comes
        from (y, w_b - 1 - x).
    """
    out = inputs.clone()
    for b, (h, w) in enumerate(img_shapes):
        out[b, :, :h, :w] = inputs[b, :, :h, :w].flip(-1)
    return out


@MODELS.register_module()
class MaskFlipRCNN(MaskRCNN):
    """mmdet's ``MaskRCNN`` whose test-time instance masks average the mask
    head on the image and on its mirror image.

    Training and the box branch are mmdet's. At prediction, the final boxes
    come from the image as usual; the mask head then runs on the features
    of the image and, with the boxes mirrored, on those of the mirrored
    image (:func:`mirror_images`); the mirrored mask probabilities are
    flipped back and the two are averaged before pasting and binarising
    (``test_cfg.rcnn.mask_thr_binary``). Boxes, scores and labels are
    unchanged; the backbone runs twice. mmdet's ``DetTTAModel`` merges boxes
    only and refuses masks, hence this class.

    Args:
        mask_flip_test: average with the mirror image at prediction (False:
            exactly ``MaskRCNN``).
        **kwargs: ``MaskRCNN`` arguments.
    """

    def __init__(self, *args, mask_flip_test: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.mask_flip_test = mask_flip_test

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """As ``MaskRCNN.predict``; (B, 3, H, W) inputs -> samples with
        ``pred_instances`` (bboxes (K, 4), scores, labels, masks
        (K, H_ori, W_ori))."""
        if not self.mask_flip_test:
            return super().predict(batch_inputs, batch_data_samples, rescale)
        roi_head = self.roi_head
        metas = [s.metainfo for s in batch_data_samples]
        x = self.extract_feat(batch_inputs)
        if batch_data_samples[0].get('proposals', None) is None:
            proposals = self.rpn_head.predict(x, batch_data_samples,
                                              rescale=False)
        else:
            proposals = [s.proposals for s in batch_data_samples]
        # boxes in the resized image's frame; the mask head rescales both
        results = roi_head.predict_bbox(x, metas, proposals,
                                        rcnn_test_cfg=roi_head.test_cfg,
                                        rescale=False)
        if sum(len(r) for r in results):
            shapes = [tuple(m['img_shape'][:2]) for m in metas]
            x_flip = self.extract_feat(mirror_images(batch_inputs, shapes))
            probs = self._mask_probs(x, [r.bboxes for r in results])
            flipped = [bbox_flip(r.bboxes, shape, 'horizontal')
                       for r, shape in zip(results, shapes)]
            probs_flip = self._mask_probs(x_flip, flipped)
            mean = [(p + q.flip(-1)) / 2 for p, q in zip(probs, probs_flip)]
            with warnings.catch_warnings():
                # mmdet re-wraps the probabilities with `new_tensor`, which
                # warns about copying a tensor; nothing is wrong
                warnings.filterwarnings('ignore', 'To copy construct')
                results = roi_head.mask_head.predict_by_feat(
                    mask_preds=mean, results_list=results,
                    batch_img_metas=metas, rcnn_test_cfg=roi_head.test_cfg,
                    rescale=rescale, activate_map=True)
        else:  # mmdet's empty-result handling
            results = roi_head.predict_mask(x, metas, results,
                                            rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _mask_probs(self, x: Tuple[Tensor, ...],
                    boxes: List[Tensor]) -> List[Tensor]:
        """Sigmoid mask probabilities (K_i, classes, S, S) per image for
        (K_i, 4) boxes on the features ``x``."""
        # mmdet's own RoI-extractor + mask-head call (it has no public one
        # that returns the raw logits before pasting)
        preds = self.roi_head._mask_forward(x, bbox2roi(boxes))['mask_preds']
        return list(preds.sigmoid().split([len(b) for b in boxes], 0))
