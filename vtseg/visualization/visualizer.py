"""One visualizer for every vtseg output: semantic maps, saliency maps and
instances (boxes, masks, polygons)."""
from typing import List, Optional

import cv2
import numpy as np
from mmseg.visualization import SegLocalVisualizer

from vtseg.registry import VISUALIZERS


def mask_polygons(mask: np.ndarray, epsilon: float = 1.0
                  ) -> List[np.ndarray]:
    """Outlines of a binary mask, outer boundaries and holes, as (K, 2) xy
    arrays for drawing (OpenCV contours: fast enough per video frame; COCO
    export uses the exact shapely polygons of
    :func:`vtseg.utils.coco_export.mask_to_polygons`)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP,
                                   cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        c = cv2.approxPolyDP(c, epsilon, True)
        if len(c) >= 3:
            out.append(c[:, 0, :].astype(np.float32))
    return out


def instance_colors(n: int) -> np.ndarray:
    """n distinct RGB colours (golden-ratio hue steps), (n, 3) uint8."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    hsv = np.stack([hues * 179, np.full(n, 200), np.full(n, 255)], 1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0]


@VISUALIZERS.register_module()
class VTSegVisualizer(SegLocalVisualizer):
    """``SegLocalVisualizer`` that also draws saliency maps and instances.

    Drawn for a prediction (:meth:`draw_prediction`), by priority:

    * ``pred_instances`` with ``masks`` and/or ``bboxes``: coloured masks,
      their outline polygons (holes included), boxes and ``label score``
      captions; an optional ``instance_ids`` field fixes each instance's
      colour (the video demo keeps colours stable across frames with it);
    * a one-channel ``seg_logits`` (probabilities, as mmseg stores them for
      binary heads): a heat map blended where the probability is high, and
      the 0.5 contour;
    * ``pred_sem_seg``: mmseg's palette overlay.

    Args:
        saliency_alpha: max opacity of the saliency heat map.
        score_thr: instances below this score are not drawn.
        **kwargs: :class:`SegLocalVisualizer` arguments.
    """

    def __init__(self, name='visualizer', saliency_alpha: float = 0.6,
                 score_thr: float = 0.0, **kwargs):
        super().__init__(name=name, **kwargs)
        self.saliency_alpha = saliency_alpha
        self.score_thr = score_thr

    # ----------------------------------------------------------- drawing
    def _draw_saliency(self, image: np.ndarray, prob: np.ndarray
                       ) -> np.ndarray:
        prob = np.clip(prob.astype(np.float32), 0, 1)
        if prob.shape != image.shape[:2]:
            prob = cv2.resize(prob, image.shape[1::-1],
                              interpolation=cv2.INTER_LINEAR)
        heat = cv2.applyColorMap((prob * 255).astype(np.uint8),
                                 cv2.COLORMAP_JET)[..., ::-1]
        a = (prob * self.saliency_alpha)[..., None]
        out = (image * (1 - a) + heat * a).astype(np.uint8)
        contours, _ = cv2.findContours((prob > 0.5).astype(np.uint8),
                                       cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), 2)
        return out

    def _draw_instances(self, image: np.ndarray, instances) -> np.ndarray:
        n = len(instances)
        keep = np.ones(n, bool)
        if 'scores' in instances:
            keep = instances.scores.detach().cpu().numpy() >= self.score_thr \
                if hasattr(instances.scores, 'detach') else \
                np.asarray(instances.scores) >= self.score_thr
        idx = np.nonzero(keep)[0]
        if 'instance_ids' in instances:
            ids = np.asarray(instances.instance_ids)[idx]
            colors = instance_colors(int(ids.max()) + 1 if len(ids) else 1)[
                ids] if len(ids) else instance_colors(1)
        else:
            colors = instance_colors(max(len(idx), 1))
        self.set_image(image)
        masks = None
        if 'masks' in instances and len(idx):
            masks = instances.masks
            masks = masks.detach().cpu().numpy() if hasattr(
                masks, 'detach') else np.asarray(masks)
            masks = masks[idx].astype(bool)
            self.draw_binary_masks(masks, colors=[tuple(c) for c in colors],
                                   alphas=0.45)
            polys = []
            pcolors = []
            for m, c in zip(masks, colors):
                for p in mask_polygons(m):
                    polys.append(p)
                    pcolors.append(tuple(int(v) for v in c))
            if polys:
                self.draw_polygons(polys, edge_colors=pcolors,
                                   line_widths=2)
        if 'bboxes' in instances and len(idx):
            boxes = instances.bboxes
            boxes = boxes.detach().cpu().numpy() if hasattr(
                boxes, 'detach') else np.asarray(boxes)
            boxes = boxes[idx]
            self.draw_bboxes(boxes, edge_colors=[tuple(c) for c in colors],
                             line_widths=2)
            classes = self.dataset_meta.get('classes') or ()
            labels = instances.labels[idx] if 'labels' in instances else \
                None
            scores = instances.scores[idx] if 'scores' in instances else None
            for j, box in enumerate(boxes):
                text = ''
                if labels is not None:
                    lab = int(labels[j])
                    text = classes[lab] if lab < len(classes) else str(lab)
                if scores is not None:
                    text += f' {float(scores[j]):.2f}'
                if text.strip():
                    self.draw_texts(
                        text.strip(), np.array([box[0], box[1]]),
                        colors=(255, 255, 255), font_sizes=10,
                        bboxes=[dict(facecolor='black', alpha=0.6, pad=1,
                                     edgecolor='none')])
        return self.get_image()

    def draw_token_stages(self, image: np.ndarray, stage_map: np.ndarray,
                          num_stages: Optional[int] = None,
                          alpha: float = 0.55) -> np.ndarray:
        """Colour each token by the stage that finalised it (DToP's
        pruning view): early exits in blue, tokens kept to the last stage in
        red, token borders in grey, and a legend with each stage's share.

        Args:
            image: (H, W, 3) RGB uint8.
            stage_map: (h, w) int stage index per token (covering the
                padded image: h * p >= H, w * p >= W).
            num_stages: number of stages (default: max + 1).
            alpha: opacity of the colours.

        Returns:
            (H, W, 3) RGB uint8.
        """
        stage_map = np.asarray(stage_map)
        S = int(num_stages or stage_map.max() + 1)
        colors = cv2.applyColorMap(
            np.linspace(0, 255, max(S, 2)).astype(np.uint8)[:, None],
            cv2.COLORMAP_JET)[:, 0, ::-1][:S]
        H, W = image.shape[:2]
        h, w = stage_map.shape
        # tokens cover p x p pixels of the (padded) input
        p = max(-(-H // h), -(-W // w))
        big = np.kron(stage_map, np.ones((p, p), stage_map.dtype))[:H, :W]
        out = (image * (1 - alpha) + colors[big] * alpha).astype(np.uint8)
        out[::p, :] = out[::p, :] // 2 + 64
        out[:, ::p] = out[:, ::p] // 2 + 64
        for s in range(S):
            share = float((stage_map == s).mean())
            y = 6 + 18 * s
            cv2.rectangle(out, (6, y), (20, y + 14),
                          tuple(int(c) for c in colors[s]), -1)
            cv2.putText(out, f'stage {s}: {100 * share:.0f}%', (26, y + 12),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                        cv2.LINE_AA)
        return out

    def draw_prediction(self, image: np.ndarray, data_sample) -> np.ndarray:
        """Draw one prediction on an RGB uint8 image; returns RGB uint8."""
        if 'pred_instances' in data_sample and len(
                data_sample.pred_instances) > 0:
            return self._draw_instances(image, data_sample.pred_instances)
        if 'seg_logits' in data_sample and \
                data_sample.seg_logits.data.shape[0] == 1:
            prob = data_sample.seg_logits.data[0].detach().cpu().numpy()
            return self._draw_saliency(image, prob)
        if 'pred_sem_seg' in data_sample:
            classes = self.dataset_meta.get('classes')
            palette = self.dataset_meta.get('palette')
            return self._draw_sem_seg(image, data_sample.pred_sem_seg,
                                      classes, palette, True)
        return image

    def add_datasample(self, name: str, image: np.ndarray, data_sample=None,
                       draw_gt: bool = True, draw_pred: bool = True,
                       show: bool = False, wait_time: float = 0,
                       out_file: Optional[str] = None, step: int = 0,
                       with_labels: Optional[bool] = True) -> None:
        """Same interface as :class:`SegLocalVisualizer` (used by the
        test-time visualization hook); the ground truth, when drawn, is
        shown on the left."""
        panels = []
        if draw_gt and data_sample is not None and \
                'gt_sem_seg' in data_sample and self.dataset_meta.get(
                    'classes'):
            panels.append(
                self._draw_sem_seg(image, data_sample.gt_sem_seg,
                                   self.dataset_meta['classes'],
                                   self.dataset_meta.get('palette'),
                                   with_labels))
        if draw_pred and data_sample is not None:
            panels.append(self.draw_prediction(image, data_sample))
        drawn = np.concatenate(panels, axis=1) if panels else image
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            cv2.imwrite(out_file, drawn[..., ::-1])
        else:
            self.add_image(name, drawn, step)


class InstanceColorTracker:
    """Keeps instance colours stable across video frames.

    Each frame's masks are matched greedily (highest IoU first, IoU >=
    ``min_iou``) to the previous frame's; matched instances keep their id,
    the others get new ids. The ids are written to
    ``pred_instances.instance_ids``, which :class:`VTSegVisualizer` uses to
    pick colours.
    """

    def __init__(self, min_iou: float = 0.3):
        self.min_iou = min_iou
        self._masks = None
        self._ids = None
        self._next = 0

    def update(self, data_sample):
        if 'pred_instances' not in data_sample or \
                'masks' not in data_sample.pred_instances:
            return data_sample
        inst = data_sample.pred_instances
        masks = inst.masks
        masks = (masks.detach().cpu().numpy() if hasattr(masks, 'detach')
                 else np.asarray(masks)).astype(bool).reshape(len(inst), -1)
        ids = np.full(len(masks), -1, np.int64)
        if self._masks is not None and len(masks) and len(self._masks) and \
                self._masks.shape[1] == masks.shape[1]:
            inter = masks.astype(np.float32) @ self._masks.T.astype(
                np.float32)
            union = masks.sum(1)[:, None] + self._masks.sum(1)[None] - inter
            iou = inter / np.maximum(union, 1)
            for flat in np.argsort(-iou, axis=None):
                i, j = np.unravel_index(flat, iou.shape)
                if iou[i, j] < self.min_iou:
                    break
                if ids[i] < 0 and self._ids[j] not in ids:
                    ids[i] = self._ids[j]
        for i in np.nonzero(ids < 0)[0]:
            ids[i] = self._next
            self._next += 1
        inst.instance_ids = ids
        self._masks, self._ids = masks, ids
        return data_sample
