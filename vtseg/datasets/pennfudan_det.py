"""Penn-Fudan pedestrians as an mmdet detection / instance dataset."""
import os.path as osp
import re
import warnings
from typing import List, Optional, Tuple

import mmengine.fileio as fileio
import numpy as np
from mmdet.datasets import BaseDetDataset
from PIL import Image
from pycocotools import mask as mask_utils

from vtseg.registry import DATASETS
from .pennfudan import pennfudan_split
from .sample_errors import NamedSampleErrorsMixin

__all__ = ['PennFudanDetDataset', 'parse_pennfudan_annotation',
           'BadAnnotationError']

_BOX_RE = re.compile(
    r'Bounding box for object (\d+)[^:]*:\s*\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)'
    r'\s*-\s*\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)')
_SIZE_RE = re.compile(r'Image size \(X x Y x C\)\s*:\s*(\d+)\s*x\s*(\d+)')


class BadAnnotationError(ValueError):
    """An annotation file that cannot be used; the message names it."""


def parse_pennfudan_annotation(path: str, backend_args=None
                               ) -> Tuple[Optional[Tuple[int, int]],
                                          List[Tuple[int, List[float]]]]:
    """Read a PASCAL Annotation v1.00 text file of Penn-Fudan.

    Returns:
        ((width, height) or None when the file states no size,
        [(object number, [x1, y1, x2, y2]), ...]) with boxes converted from
        the file's 1-based inclusive pixel corners to mmdet's 0-based
        half-open pixel coordinates (x1 = Xmin - 1, x2 = Xmax).

    Raises:
        FileNotFoundError: the file is missing.
        BadAnnotationError: the file is empty, or a box line cannot be
            parsed, or a box has x2 <= x1 or y2 <= y1.
    """
    if not fileio.exists(path, backend_args=backend_args):
        raise FileNotFoundError(f'annotation file {path} does not exist')
    text = fileio.get_text(path, backend_args=backend_args)
    if not text.strip():
        raise BadAnnotationError(f'annotation file {path} is empty')
    size = _SIZE_RE.search(text)
    wh = (int(size.group(1)), int(size.group(2))) if size else None
    boxes = []
    for line in text.splitlines():
        if line.startswith('Bounding box'):
            m = _BOX_RE.search(line)
            if m is None:
                raise BadAnnotationError(
                    f'annotation file {path}: cannot parse box line '
                    f'{line.strip()!r}')
            i, x1, y1, x2, y2 = (int(v) for v in m.groups())
            box = [x1 - 1.0, y1 - 1.0, float(x2), float(y2)]
            if box[2] <= box[0] or box[3] <= box[1]:
                raise BadAnnotationError(
                    f'annotation file {path}: object {i} has an empty box '
                    f'{(x1, y1, x2, y2)}')
            boxes.append((i, box))
    return wh, boxes


@DATASETS.register_module()
class PennFudanDetDataset(NamedSampleErrorsMixin, BaseDetDataset):
    """Penn-Fudan pedestrians with boxes and instance masks for mmdet.

    Layout under ``data_root``: ``PNGImages/<name>.png``,
    ``Annotation/<name>.txt`` (boxes, PASCAL Annotation v1.00 text) and
    ``PedMasks/<name>_mask.png`` (0 = background, object i has id i). One
    class, ``pedestrian``. Boxes come from the annotation files, masks from
    the PNGs (stored as COCO RLE in ``instances[i]['mask']``, which mmdet's
    ``LoadAnnotations(with_mask=True)`` decodes).

    Split: the fixed one of :class:`PennFudanDataset` (sorted names, every
    ``val_every``-th one is val; 34 train / 16 val images of the 50-image
    subset with ``val_every=3``).

    Bad annotations (``on_bad``, docs/detection.md):

    * missing or empty annotation file, unparsable box line, empty box,
      box entirely outside the image, a mask id without a box or a box
      without a mask pixel: ``'error'`` (default) raises
      :class:`BadAnnotationError` / ``FileNotFoundError`` naming the file;
      ``'skip'`` drops the image (missing / empty file) or the object with a
      ``UserWarning`` naming the file;
    * a box partly outside the image is clipped to it (warning);
    * no image left after skipping: :class:`BadAnnotationError`.

    Args:
        split: ``'all'``, ``'train'`` or ``'val'``.
        val_every: spacing of the val images.
        with_mask: read the instance masks.
        on_bad: ``'error'`` or ``'skip'``.
        **kwargs: :class:`mmdet.datasets.BaseDetDataset` arguments
            (``data_root``, ``pipeline``, ``test_mode``, ``filter_cfg``...).
    """
    METAINFO = dict(classes=('pedestrian', ), palette=[(220, 20, 60)])

    def __init__(self,
                 split: str = 'all',
                 val_every: int = 3,
                 with_mask: bool = True,
                 on_bad: str = 'error',
                 **kwargs):
        pennfudan_split([], split, val_every, type(self).__name__)
        if on_bad not in ('error', 'skip'):
            raise ValueError(f"PennFudanDetDataset: on_bad must be 'error' "
                             f"or 'skip', got {on_bad!r}")
        self.split = split
        self.val_every = val_every
        self.with_mask = with_mask
        self.on_bad = on_bad
        kwargs.setdefault(
            'data_prefix',
            dict(img='PNGImages', ann='Annotation', seg='PedMasks'))
        super().__init__(**kwargs)

    def _bad(self, err: Exception) -> None:
        if self.on_bad == 'error':
            raise err
        warnings.warn(f'{type(self).__name__}: skipped: {err}')

    def load_data_list(self) -> List[dict]:
        img_dir = self.data_prefix['img']
        ann_dir = self.data_prefix['ann']
        seg_dir = self.data_prefix.get('seg')
        if not fileio.isdir(img_dir, backend_args=self.backend_args):
            raise FileNotFoundError(f'{type(self).__name__}: image folder '
                                    f'{img_dir} does not exist')
        names = [
            f[:-4] for f in fileio.list_dir_or_file(
                img_dir, list_dir=False, suffix='.png',
                backend_args=self.backend_args)
        ]
        if not names:
            raise FileNotFoundError(f'{type(self).__name__}: no *.png image '
                                    f'in {img_dir}')
        data_list = []
        for idx, name in enumerate(
                pennfudan_split(names, self.split, self.val_every,
                                type(self).__name__)):
            info = self._load_one(name, idx, img_dir, ann_dir, seg_dir)
            if info is not None:
                data_list.append(info)
        if not data_list:
            raise BadAnnotationError(
                f'{type(self).__name__}: no usable image left in {img_dir} '
                f'(split {self.split!r}) after skipping bad annotations')
        return data_list

    def _load_one(self, name, idx, img_dir, ann_dir, seg_dir):
        img_path = osp.join(img_dir, name + '.png')
        ann_path = osp.join(ann_dir, name + '.txt')
        try:
            wh, boxes = parse_pennfudan_annotation(ann_path,
                                                   self.backend_args)
        except (FileNotFoundError, BadAnnotationError) as err:
            self._bad(type(err)(f'{type(self).__name__}: image {img_path}: '
                                f'{err}'))
            return None
        with Image.open(img_path) as im:
            width, height = im.size
        if wh is not None and wh != (width, height):
            warnings.warn(f'{type(self).__name__}: {ann_path} states size '
                          f'{wh}, the image {img_path} is {(width, height)}; '
                          'using the image size')
        ids = None
        seg_path = None
        if self.with_mask and seg_dir is not None:
            seg_path = osp.join(seg_dir, name + '_mask.png')
            if not fileio.exists(seg_path, backend_args=self.backend_args):
                self._bad(FileNotFoundError(
                    f'{type(self).__name__}: image {img_path} has no mask '
                    f'file (expected {seg_path})'))
                return None
            with Image.open(seg_path) as im:
                ids = np.asarray(im)
            if ids.shape != (height, width):
                self._bad(BadAnnotationError(
                    f'{type(self).__name__}: mask {seg_path} is '
                    f'{ids.shape[::-1]}, the image {img_path} is '
                    f'{(width, height)}'))
                return None
        instances = []
        for i, box in boxes:
            x1, y1, x2, y2 = box
            clipped = [max(x1, 0.), max(y1, 0.), min(x2, width),
                       min(y2, height)]
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                self._bad(BadAnnotationError(
                    f'{type(self).__name__}: {ann_path}: object {i} box '
                    f'{box} lies outside the {width}x{height} image'))
                continue
            if clipped != box:
                warnings.warn(f'{type(self).__name__}: {ann_path}: object '
                              f'{i} box {box} clipped to the image')
            inst = dict(bbox=clipped, bbox_label=0, ignore_flag=0)
            if ids is not None:
                m = np.asfortranarray((ids == i).astype(np.uint8))
                if not m.any():
                    self._bad(BadAnnotationError(
                        f'{type(self).__name__}: {ann_path}: object {i} has '
                        f'no pixel in the mask {seg_path}'))
                    continue
                rle = mask_utils.encode(m)
                rle['counts'] = rle['counts'].decode('ascii')
                inst['mask'] = rle
            instances.append(inst)
        if ids is not None:
            extra = sorted(set(np.unique(ids).tolist()) - {0} -
                           {i for i, _ in boxes})
            if extra:
                self._bad(BadAnnotationError(
                    f'{type(self).__name__}: mask {seg_path} has instance '
                    f'ids {extra} without a box in {ann_path}'))
        return dict(img_path=img_path, img_id=idx, width=width,
                    height=height, instances=instances,
                    seg_map_path=None)
