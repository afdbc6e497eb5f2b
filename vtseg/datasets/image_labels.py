"""Segmentation datasets with image-level labels for weakly supervised
segmentation (ToCo, docs/toco.md).

Every data info gets ``img_labels``: a (K - 1,) float32 0/1 vector of the
foreground classes present in the image, read from a CSV label file or
derived from the mask when the dataset is loaded (the mask itself is not
loaded by the training pipeline: masks are used for evaluation only). Pack
it with ``PackSegInputs(meta_keys=(..., 'img_labels'))``.
"""
import csv
import os.path as osp
from typing import Dict, List, Optional

import numpy as np
from mmseg.datasets import BaseSegDataset, PascalVOCDataset
from PIL import Image

from vtseg.registry import DATASETS
from .sample_errors import NamedSampleErrorsMixin

__all__ = ['ImageLabelMixin', 'VOCImageLabelDataset',
           'COCOImageLabelDataset', 'read_image_label_csv',
           'image_labels_from_mask']


def read_image_label_csv(path: str, classes) -> Dict[str, np.ndarray]:
    """Read an image-level label CSV: a header ``id,<class>,<class>,...``
    (foreground class names, any order, each known) and one row per image
    with 0/1 values. Returns {image id: (len(classes),) float32} in the
    order of ``classes`` (classes missing from the header are 0).

    Raises:
        ValueError: naming the file and the column / row of an unknown
            class name, a duplicate column or a value other than 0 / 1.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'image-level label file {path} not found')
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    with open(path, newline='') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or header[0] != 'id':
            raise ValueError(f'{path}: the header must start with "id", got '
                             f'{header!r}')
        cols = header[1:]
        for c in cols:
            if c not in index:
                raise ValueError(f'{path}: unknown class name {c!r} in the '
                                 f'header (known: {", ".join(classes)})')
        if len(set(cols)) != len(cols):
            raise ValueError(f'{path}: duplicate class column in {cols}')
        for n, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f'{path}, line {n}: {len(row)} fields, the '
                                 f'header has {len(header)}')
            vec = np.zeros(len(classes), np.float32)
            for c, v in zip(cols, row[1:]):
                if v.strip() not in ('0', '1'):
                    raise ValueError(f'{path}, line {n} ({row[0]}): value '
                                     f'{v!r} for {c!r} is not 0 or 1')
                vec[index[c]] = float(v)
            out[row[0]] = vec
    return out


def image_labels_from_mask(path: str, num_classes: int,
                           ignore_index: int = 255) -> np.ndarray:
    """(num_classes - 1,) float32: 1 for every foreground class id 1 ..
    num_classes - 1 in the mask PNG at ``path`` (0 and ``ignore_index``
    are not classes). Raises FileNotFoundError naming a missing mask and
    ValueError for an id out of range."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'mask {path} not found (needed to derive '
                                'the image-level labels)')
    ids = np.unique(np.asarray(Image.open(path)))
    ids = ids[(ids != 0) & (ids != ignore_index)]
    if ids.size and ids.max() >= num_classes:
        raise ValueError(f'mask {path}: class id {int(ids.max())} >= '
                         f'{num_classes} classes')
    vec = np.zeros(num_classes - 1, np.float32)
    vec[ids.astype(np.int64) - 1] = 1
    return vec


class ImageLabelMixin:
    """Adds ``img_labels`` to every data info of a segmentation dataset.

    Args (keyword, before the dataset's own):
        label_file: CSV (path relative to ``data_root`` unless absolute),
            see :func:`read_image_label_csv`; None derives the labels from
            the masks (``seg_map_path``).
        no_positive: ``'error'`` (default) raises naming the image when it
            has no foreground class; ``'skip'`` drops such images (a
            weakly supervised step needs a positive class).
    """

    def _init_image_labels(self, label_file: Optional[str],
                           no_positive: str):
        if no_positive not in ('error', 'skip'):
            raise ValueError(f"no_positive must be 'error' or 'skip', got "
                             f'{no_positive!r}')
        self.label_file = label_file
        self.no_positive = no_positive

    def load_data_list(self) -> List[dict]:
        infos = super().load_data_list()
        fg = list(self._metainfo['classes'][1:])
        table = None
        if self.label_file is not None:
            path = self.label_file if osp.isabs(self.label_file) or \
                not self.data_root else osp.join(self.data_root,
                                                 self.label_file)
            table = read_image_label_csv(path, fg)
        out = []
        for info in infos:
            key = osp.splitext(osp.basename(info['img_path']))[0]
            if table is not None:
                if key not in table:
                    raise KeyError(f'image {key} ({info["img_path"]}) has no '
                                   f'row in {self.label_file}')
                vec = table[key]
            else:
                vec = image_labels_from_mask(info['seg_map_path'],
                                             len(fg) + 1)
            if vec.sum() == 0:
                if self.no_positive == 'skip':
                    continue
                source = f'label file {self.label_file}' if table is not \
                    None else f'mask {info["seg_map_path"]}'
                raise ValueError(
                    f'image {key} ({info["img_path"]}) has no positive class '
                    f"({source}); set no_positive='skip' to drop such images")
            info['img_labels'] = vec
            out.append(info)
        return out


@DATASETS.register_module()
class VOCImageLabelDataset(ImageLabelMixin, NamedSampleErrorsMixin,
                           PascalVOCDataset):
    """PASCAL VOC 2012 (21 classes; also the SBD ``SegmentationClassAug``
    masks) with image-level labels (``label_file`` CSV, or derived from the
    masks). See :class:`ImageLabelMixin`; other arguments as mmseg's
    ``PascalVOCDataset`` (``ann_file`` lists the image ids)."""

    def __init__(self, label_file: Optional[str] = None,
                 no_positive: str = 'error', **kwargs):
        self._init_image_labels(label_file, no_positive)
        super().__init__(**kwargs)


COCO_OBJECT_CLASSES = (
    'background', 'person', 'bicycle', 'car', 'motorcycle', 'airplane',
    'bus', 'train', 'truck', 'boat', 'traffic light', 'fire hydrant',
    'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse',
    'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack',
    'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis',
    'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove',
    'skateboard', 'surfboard', 'tennis racket', 'bottle', 'wine glass',
    'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich',
    'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake',
    'chair', 'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv',
    'laptop', 'mouse', 'remote', 'keyboard', 'cell phone', 'microwave',
    'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase',
    'scissors', 'teddy bear', 'hair drier', 'toothbrush')


@DATASETS.register_module()
class COCOImageLabelDataset(ImageLabelMixin, NamedSampleErrorsMixin,
                            BaseSegDataset):
    """COCO 2014 semantic segmentation in ToCo's layout (81 classes: 0
    background, 1..80 the object categories in COCO order; images
    ``JPEGImages/{train2014,val2014}/*.jpg``, masks
    ``SegmentationClass/{train2014,val2014}/*.png`` rendered from the
    instance annotations, 255 = ignore) with image-level labels derived
    from the masks or read from ``label_file``."""
    METAINFO = dict(
        classes=COCO_OBJECT_CLASSES,
        palette=[[(37 * i) % 256, (97 * i) % 256, (151 * i) % 256]
                 for i in range(len(COCO_OBJECT_CLASSES))])

    def __init__(self, label_file: Optional[str] = None,
                 no_positive: str = 'error', img_suffix='.jpg',
                 seg_map_suffix='.png', **kwargs):
        self._init_image_labels(label_file, no_positive)
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         **kwargs)
