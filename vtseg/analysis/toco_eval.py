"""Evaluation of weakly supervised segmentation (ToCo, docs/toco.md): CAM,
auxiliary CAM, PAR pseudo-label and segmentation-head mIoU on a split, in
one pass per image (``tools/analysis_tools/toco_cam.py`` is the command).

Scoring (docs/toco.md): per output a confusion matrix over the pixels whose
ground truth is not ``ignore_index``; pixels an output leaves at
``ignore_index`` (the uncertain band of PAR pseudo labels) are removed from
the ground truth and their share is reported as ``ignored``.
"""
import os
import os.path as osp
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from PIL import Image

from vtseg.functional.toco import token_cosine_similarity

__all__ = ['Confusion', 'evaluate_wsss', 'dense_crf', 'check_masks',
           'layer_token_similarity']


class Confusion:
    """K x K confusion matrix (rows ground truth, columns prediction) with
    ``ignore_index`` removed from both sides."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.k = num_classes
        self.ignore_index = ignore_index
        self.mat = np.zeros((num_classes, num_classes), np.int64)
        self.valid = 0  # ground-truth pixels that count
        self.ignored = 0  # of those, predicted ignore_index

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        if pred.shape != gt.shape:
            raise ValueError(f'prediction {pred.shape} and ground truth '
                             f'{gt.shape} differ in size')
        gt_ok = gt != self.ignore_index
        self.valid += int(gt_ok.sum())
        keep = gt_ok & (pred != self.ignore_index)
        self.ignored += int((gt_ok & ~keep).sum())
        p = pred[keep].astype(np.int64)
        g = gt[keep].astype(np.int64)
        if p.size and (p.max() >= self.k or g.max() >= self.k):
            raise ValueError(f'class id >= {self.k} in the prediction or '
                             'the ground truth')
        self.mat += np.bincount(g * self.k + p, minlength=self.k ** 2
                                ).reshape(self.k, self.k)

    def iou(self) -> np.ndarray:
        """(K,) IoU per class; NaN for a class absent from both."""
        tp = np.diag(self.mat).astype(np.float64)
        union = self.mat.sum(0) + self.mat.sum(1) - tp
        with np.errstate(invalid='ignore', divide='ignore'):
            return tp / union

    def summary(self, class_names: Sequence[str]) -> dict:
        iou = self.iou()
        return dict(
            mIoU=float(np.nanmean(iou) * 100),
            IoU={n: (None if np.isnan(v) else round(float(v) * 100, 2))
                 for n, v in zip(class_names, iou)},
            ignored=float(self.ignored / max(self.valid, 1)),
            pixels=int(self.valid))


def check_masks(dataset, missing: str = 'error') -> List[int]:
    """Indices of the samples to evaluate: every sample needs its mask
    (``seg_map_path``). ``missing='error'`` raises FileNotFoundError naming
    the missing masks, ``'skip'`` leaves those samples out (and prints
    them)."""
    if missing not in ('error', 'skip'):
        raise ValueError(f"missing must be 'error' or 'skip', got "
                         f'{missing!r}')
    keep, gone = [], []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        path = info.get('seg_map_path')
        if path and osp.isfile(path):
            keep.append(i)
        else:
            gone.append(f'{info["img_path"]}: mask {path} not found')
    if gone and missing == 'error':
        more = f' (and {len(gone) - 5} more)' if len(gone) > 5 else ''
        raise FileNotFoundError('missing masks at evaluation: ' +
                                '; '.join(gone[:5]) + more +
                                " (use missing='skip' / --skip-missing to "
                                'leave these images out)')
    for g in gone:
        print(f'skipped {g}')
    return keep


def dense_crf(image: np.ndarray, probs: np.ndarray, num_iter: int = 10,
              gauss_xy: float = 1, gauss_w: float = 1, bi_xy: float = 121,
              bi_rgb: float = 5, bi_w: float = 4) -> np.ndarray:
    """Dense CRF on softmax probabilities (ToCo's inference settings by
    default). Needs the optional ``pydensecrf`` module (``pip install
    pydensecrf2``, the ``wsss`` extra); raises ImportError naming it.

    Args:
        image: (H, W, 3) uint8 RGB.
        probs: (K, H, W) float probabilities.

    Returns:
        (K, H, W) float32 refined probabilities.
    """
    try:  # optional dependency, only for CRF refinement
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_softmax
    except ImportError as err:
        raise ImportError('dense CRF needs pydensecrf (pip install '
                          'pydensecrf2)') from err
    k, h, w = probs.shape
    d = dcrf.DenseCRF2D(w, h, k)
    d.setUnaryEnergy(unary_from_softmax(probs.astype(np.float32)))
    d.addPairwiseGaussian(sxy=gauss_xy, compat=gauss_w)
    # pydensecrf takes a writable C-contiguous uint8 buffer (a read-only
    # array, e.g. a decoded image view, raises inside the Cython code)
    rgb = np.array(image, dtype=np.uint8, order='C', copy=True)
    d.addPairwiseBilateral(sxy=bi_xy, srgb=bi_rgb, rgbim=rgb, compat=bi_w)
    return np.array(d.inference(num_iter), np.float32).reshape(k, h, w)


def evaluate_wsss(model, dataset, outputs: Iterable[str] = ('cam', 'par',
                                                            'seg'),
                  indices: Optional[Sequence[int]] = None,
                  save_dir: Optional[str] = None,
                  crf: bool = False, progress: int = 50) -> Dict[str, dict]:
    """Score a ToCo model's outputs on a dataset (one image at a time).

    Args:
        model: a :class:`~vtseg.models.segmentors.ToCoSegmentor` (its
            ``test_cfg`` sets scales, flip and base size).
        dataset: a dataset whose pipeline loads the mask (``gt_sem_seg``)
            and packs ``img_labels``.
        outputs: any of ``'cam'``, ``'aux_cam'``, ``'par'``, ``'seg'``;
            with ``crf``, ``'seg_crf'`` is added (the head's softmax after
            :func:`dense_crf`).
        indices: samples to use (default all; see :func:`check_masks`).
        save_dir: write each output's label maps as PNG
            (``save_dir/<output>/<image id>.png``, 255 = ignore).

    Returns:
        {output: summary dict (mIoU in %, per-class IoU, ignored share)},
        and ``'classification'``: F1 of the image classifier (logit > 0)
        against the image labels, the share of images with no positive
        logit, and (with a CAM output) the share of images whose
        label-masked CAM is zero everywhere (a collapsed classifier).
    """
    outputs = tuple(outputs)
    names = dataset.metainfo['classes']
    k = len(names)
    scores = {o: Confusion(k) for o in outputs}
    if crf:
        scores['seg_crf'] = Confusion(k)
        if 'seg' not in outputs:
            raise ValueError('crf=True refines the seg output; add seg')
    if save_dir:
        for o in scores:
            os.makedirs(osp.join(save_dir, o), exist_ok=True)
    model.eval()
    indices = range(len(dataset)) if indices is None else indices
    tp = n_pred = n_true = no_pos = cam_zero = 0
    for n, i in enumerate(indices):
        data = model.data_preprocessor(pseudo_collate([dataset[i]]), False)
        ds = data['data_samples'][0]
        with torch.no_grad():
            res = model.predict_labels(data['inputs'], data['data_samples'],
                                       outputs)
            logits = model.classify(data['inputs'])[0]
        truth = model.image_labels(data['data_samples'])[0] > 0
        pred = logits > 0
        tp += int((pred & truth).sum())
        n_pred += int(pred.sum())
        n_true += int(truth.sum())
        no_pos += int(pred.sum() == 0)
        if res.get('cam_maps'):
            cam_zero += int(float(res['cam_maps'][0].max()) == 0.0)
        gt = ds.gt_sem_seg.data[0].cpu().numpy()
        preds = {o: res[o][0].cpu().numpy() for o in outputs}
        if crf:
            probs = res['seg_logits'][0].softmax(0).cpu().numpy()
            img = np.asarray(Image.open(ds.metainfo['img_path']).convert(
                'RGB'))
            if img.shape[:2] != probs.shape[1:]:
                raise ValueError(f'{ds.metainfo["img_path"]}: image '
                                 f'{img.shape[:2]} vs prediction '
                                 f'{probs.shape[1:]}')
            preds['seg_crf'] = dense_crf(img, probs).argmax(0)
        for o, p in preds.items():
            scores[o].update(p, gt)
            if save_dir:
                key = osp.splitext(osp.basename(ds.metainfo['img_path']))[0]
                Image.fromarray(p.astype(np.uint8)).save(
                    osp.join(save_dir, o, key + '.png'))
        if progress and (n + 1) % progress == 0:
            print(f'{n + 1}/{len(indices)} ' + ' '.join(
                f'{o} {s.summary(names)["mIoU"]:.2f}'
                for o, s in scores.items()), flush=True)
    out = {o: s.summary(names) for o, s in scores.items()}
    n = max(len(indices), 1)
    out['classification'] = dict(
        f1=2 * tp / max(n_pred + n_true, 1), no_positive_logit=no_pos / n,
        cam_all_zero=cam_zero / n if set(outputs) & {'cam', 'par'}
        else None)
    return out


@torch.no_grad()
def layer_token_similarity(model, dataset, indices: Sequence[int]
                           ) -> List[float]:
    """Over-smoothing measure (the ToCo paper's argument): for every block,
    the mean absolute cosine similarity between all pairs of patch tokens
    of an image (final norm applied to the last block's output, as the
    CAM sees it), averaged over the images ``indices``. Returns one value
    per block (1.0 = all tokens parallel)."""
    model.eval()
    depth = model.backbone.depth
    sums = np.zeros(depth)
    for i in indices:
        data = model.data_preprocessor(pseudo_collate([dataset[i]]), False)
        out = model.backbone.forward_features(
            data['inputs'], token_layers=list(range(depth)))
        n_prefix = out['n_prefix']
        for b in range(depth):
            tok = out['tokens'][b][:, n_prefix:]
            if b == depth - 1 and model.backbone.norm is not None:
                tok = model.backbone.norm(tok)
            sim = token_cosine_similarity(tok.transpose(1, 2))
            n = sim.shape[-1]
            off = (sim.sum() - sim.diagonal(dim1=1, dim2=2).sum()) / max(
                n * (n - 1), 1)
            sums[b] += float(off)
    return (sums / max(len(indices), 1)).tolist()
