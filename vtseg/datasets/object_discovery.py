"""Datasets and transforms for unsupervised object discovery (TokenCut).

Every discovery dataset puts the ground-truth boxes of an image into its data
info as ``gt_bboxes``: float32 (K, 4) [x1, y1, x2, y2], 0-based half-open
pixel coordinates **of the original image**. Pack them with
``PackSegInputs(meta_keys=DISCOVERY_META_KEYS)``; :class:`CorLocMetric`
reads them from the data sample. No transform rescales them (TokenCut's
predictions are returned in original-image coordinates too).

* :class:`VOCDiscoveryDataset`: VOC07 / VOC12 trainval XML boxes (1-based:
  xmin - 1, ymin - 1, xmax and ymax kept); ``no_hard`` as the paper.
* :class:`COCO20kDataset`: COCO train2014 restricted to a file list (the
  reference's ``coco_20k_filenames.txt``), crowd boxes dropped.
* :class:`MaskBoxDataset`: any binary / instance mask dataset (e.g.
  ``sod_bsds``), boxes derived from the masks.
* :class:`PennFudanDiscoveryDataset`: Penn-Fudan pedestrians, boxes from the
  ``Annotation/*.txt`` files (any pedestrian counts).
* :class:`VideoFramesDataset`: DAVIS-style frame folders, one item per
  sequence (for :class:`~vtseg.models.segmentors.TokenCutVideo`), or one
  item per frame with boxes from its mask (``items='frame'``, image-mode
  discovery on video frames).

The discovery transforms (``ResizeToMultiple``, ``LoadVideoFrames``,
``PackVideoInputs``) are in :mod:`vtseg.datasets.transforms.discovery`.
"""
import glob
import os.path as osp
import re
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence

import mmengine
import numpy as np
from mmengine.dataset import BaseDataset
from mmseg.datasets import BaseSegDataset
from PIL import Image
from pycocotools.coco import COCO
from scipy import ndimage

from vtseg.registry import DATASETS
from .sample_errors import NamedSampleErrorsMixin
from .saliency import SaliencyDataset
from .transforms.loading import binarize_mask, reduce_mask_channels

__all__ = [
    'DISCOVERY_META_KEYS', 'VOCDiscoveryDataset', 'COCO20kDataset',
    'MaskBoxDataset', 'PennFudanDiscoveryDataset', 'VideoFramesDataset',
    'boxes_from_mask', 'parse_voc_xml', 'parse_pennfudan_txt',
    'check_clip_frame_sizes'
]

#: PackSegInputs meta keys for discovery (mmseg's defaults + gt boxes).
DISCOVERY_META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                       'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                       'reduce_zero_label', 'gt_bboxes')

_FG_META = dict(classes=('background', 'foreground'),
                palette=[[0, 0, 0], [255, 255, 255]])


def _boxes(arr) -> np.ndarray:
    return np.asarray(arr, dtype=np.float32).reshape(-1, 4)


# ------------------------------------------------------------------ parsing
def parse_voc_xml(path: str, no_hard: bool = False) -> Dict:
    """Boxes of one VOC annotation file.

    VOC stores 1-based inclusive pixel indices; a box (1, 1, W, H) covers the
    image, i.e. [0, 0, W, H] half-open: xmin and ymin lose 1, xmax and ymax
    stay (the reference's convention).

    Args:
        path: ``Annotations/<id>.xml``.
        no_hard: drop objects marked difficult or truncated.

    Returns:
        dict ``boxes`` float32 (K, 4), ``names`` (K,), ``num_objects`` (all
        objects, before ``no_hard``), ``filename``, ``size`` (H, W) or None.
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise ValueError(f'cannot parse VOC annotation {path}: {e}') from e
    boxes, names = [], []
    objects = root.findall('object')
    for obj in objects:
        hard = any((obj.findtext(tag) or '0').strip() == '1'
                   for tag in ('difficult', 'truncated'))
        if no_hard and hard:
            continue
        bb = obj.find('bndbox')
        if bb is None:
            raise ValueError(f'{path}: object without <bndbox>')
        try:
            x1, y1, x2, y2 = (float(bb.findtext(k))
                              for k in ('xmin', 'ymin', 'xmax', 'ymax'))
        except (TypeError, ValueError) as e:
            raise ValueError(f'{path}: bad <bndbox> ({e})') from e
        boxes.append([x1 - 1, y1 - 1, x2, y2])
        names.append(obj.findtext('name'))
    size = root.find('size')
    hw = None
    if size is not None and size.findtext('height'):
        hw = (int(size.findtext('height')), int(size.findtext('width')))
    return dict(boxes=_boxes(boxes), names=names, num_objects=len(objects),
                filename=root.findtext('filename'), size=hw)


_PF_BOX = re.compile(r'Bounding box for object \d+[^:]*:\s*\((\d+),\s*(\d+)\)'
                     r'\s*-\s*\((\d+),\s*(\d+)\)')


def parse_pennfudan_txt(path: str) -> np.ndarray:
    """Boxes of a Penn-Fudan ``Annotation/*.txt`` file (PASCAL Annotation
    v1.00, 1-based (Xmin, Ymin) - (Xmax, Ymax)) -> float32 (K, 4) 0-based
    half-open [xmin - 1, ymin - 1, xmax, ymax]."""
    try:
        with open(path, encoding='latin-1') as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f'cannot read Penn-Fudan annotation {path}: '
                         f'{e}') from e
    boxes = [[int(a) - 1, int(b) - 1, int(c), int(d)]
             for a, b, c, d in _PF_BOX.findall(text)]
    if not boxes:
        raise ValueError(f'{path}: no "Bounding box for object" line found')
    return _boxes(boxes)


def boxes_from_mask(mask: np.ndarray, mode: str = 'mask',
                    min_pixels: int = 1) -> np.ndarray:
    """Boxes [x1, y1, x2, y2] (half-open pixels) from a mask.

    Args:
        mask: (H, W) integer / bool mask (0 = background).
        mode: ``'mask'``: one box around all foreground; ``'components'``:
            one per 8-connected foreground component; ``'instances'``: one
            per distinct nonzero value (instance-id masks).
        min_pixels: skip components / instances smaller than this.

    Returns:
        float32 (K, 4); K = 0 for an empty mask.
    """
    mask = np.asarray(mask)
    if mode == 'mask':
        regions = [mask > 0]
    elif mode == 'components':
        labels, n = ndimage.label(mask > 0, structure=np.ones((3, 3)))
        regions = [labels == i for i in range(1, n + 1)]
    elif mode == 'instances':
        regions = [mask == v for v in np.unique(mask) if v != 0]
    else:
        raise ValueError(f"mode must be 'mask', 'components' or 'instances', "
                         f'got {mode!r}')
    out = []
    for r in regions:
        if r.sum() < min_pixels:
            continue
        ys, xs = np.nonzero(r)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return _boxes(out)


# ----------------------------------------------------------------- datasets
@DATASETS.register_module()
class VOCDiscoveryDataset(NamedSampleErrorsMixin, BaseSegDataset):
    """PASCAL VOC07 / VOC12 boxes for single-object discovery (CorLoc).

    Layout (``data_root`` = ``VOCdevkit/VOC2007``): ``JPEGImages/<id>.jpg``,
    ``Annotations/<id>.xml``, ids from ``ann_file`` (default
    ``ImageSets/Main/trainval.txt``: 5,011 images for VOC07, 11,540 for
    VOC12).

    Args:
        no_hard: the paper's optional setting: drop difficult / truncated
            objects and skip images left with no box (off: every box counts,
            every image is scored).
    """
    METAINFO = _FG_META

    def __init__(self,
                 ann_file: str = 'ImageSets/Main/trainval.txt',
                 data_prefix: Optional[dict] = None,
                 no_hard: bool = False,
                 **kwargs):
        self.no_hard = no_hard
        super().__init__(
            ann_file=ann_file,
            data_prefix=data_prefix or dict(img_path='JPEGImages',
                                            seg_map_path='Annotations'),
            img_suffix='.jpg', seg_map_suffix='.xml', **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'VOCDiscoveryDataset: image list '
                                    f'{self.ann_file} not found')
        img_dir = self.data_prefix['img_path']
        ann_dir = self.data_prefix['seg_map_path']
        out = []
        for img_id in mmengine.list_from_file(self.ann_file):
            img_id = img_id.strip()
            if not img_id:
                continue
            xml = osp.join(ann_dir, img_id + '.xml')
            if not osp.isfile(xml):
                raise FileNotFoundError(f'VOCDiscoveryDataset: annotation '
                                        f'{xml} of {self.ann_file} missing')
            ann = parse_voc_xml(xml, self.no_hard)
            if self.no_hard and len(ann['boxes']) == 0:
                continue
            out.append(dict(img_path=osp.join(img_dir, img_id + '.jpg'),
                            gt_bboxes=ann['boxes'], seg_fields=[],
                            reduce_zero_label=False, label_map=None))
        return out


@DATASETS.register_module()
class COCO20kDataset(NamedSampleErrorsMixin, BaseSegDataset):
    """COCO20k: 19,817 COCO train2014 images listed by the reference's
    ``coco_20k_filenames.txt`` (one file name per line), boxes from the COCO
    instances json with crowd boxes dropped. Boxes are converted from xywh
    and rounded to integers, as the reference does. An image whose boxes are
    all crowd keeps an empty box list (scored as a miss).

    Args:
        ann_file: ``annotations/instances_train2014.json``.
        file_list: the 20k file-name list.
        data_prefix: ``dict(img_path='images/train2014')``.
        round_boxes: round box corners to integers (reference).
    """
    METAINFO = _FG_META

    def __init__(self, ann_file: str, file_list: str,
                 data_prefix: Optional[dict] = None,
                 round_boxes: bool = True, **kwargs):
        self.file_list = file_list
        self.round_boxes = round_boxes
        super().__init__(ann_file=ann_file,
                         data_prefix=data_prefix or dict(
                             img_path='images/train2014'), **kwargs)

    def load_data_list(self) -> List[dict]:
        flist = self.file_list
        if self.data_root and not osp.isabs(flist):
            flist = osp.join(self.data_root, flist)
        for f in (flist, self.ann_file):
            if not osp.isfile(f):
                raise FileNotFoundError(f'COCO20kDataset: {f} not found')
        coco = COCO(self.ann_file)
        by_name = {im['file_name']: im for im in coco.dataset['images']}
        out = []
        for name in mmengine.list_from_file(flist):
            name = osp.basename(name.strip())
            if not name:
                continue
            if name not in by_name:
                raise ValueError(f'COCO20kDataset: {name} of {flist} is not '
                                 f'in {self.ann_file}')
            im = by_name[name]
            boxes = []
            for a in coco.loadAnns(coco.getAnnIds(imgIds=im['id'])):
                if a.get('iscrowd', 0):
                    continue
                x, y, w, h = a['bbox']
                b = [x, y, x + w, y + h]
                boxes.append([round(v) for v in b] if self.round_boxes else b)
            out.append(dict(img_path=osp.join(self.data_prefix['img_path'],
                                              name),
                            gt_bboxes=_boxes(boxes), seg_fields=[],
                            reduce_zero_label=False, label_map=None))
        return out


@DATASETS.register_module()
class MaskBoxDataset(SaliencyDataset):
    """A binary or instance mask dataset with boxes derived from the masks
    (e.g. ``sod_bsds``: ``box_mode='mask'``, the box of the whole salient
    mask). Everything else (layouts, splits, errors) is
    :class:`~vtseg.datasets.SaliencyDataset`; masks are loaded for the
    saliency metric with ``LoadBinaryMask``.

    Args:
        box_mode: see :func:`boxes_from_mask`.
        min_box_pixels: ignore mask regions smaller than this.
        mask_threshold: binarisation of the masks for ``box_mode`` ``'mask'``
            and ``'components'``: None for vtseg's rule
            (:func:`~vtseg.datasets.transforms.loading.binarize_mask`), as
            the pipeline's ``LoadBinaryMask`` should use the same.
    """

    def __init__(self, box_mode: str = 'mask', min_box_pixels: int = 1,
                 mask_threshold: Optional[float] = None, **kwargs):
        self.box_mode = box_mode
        self.min_box_pixels = min_box_pixels
        self.mask_threshold = mask_threshold
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        data = super().load_data_list()
        for info in data:
            if 'seg_map_path' not in info:
                raise ValueError('MaskBoxDataset needs masks '
                                 '(data_prefix.seg_map_path) to derive boxes')
            try:
                mask = np.asarray(Image.open(info['seg_map_path']))
            except OSError as e:
                raise ValueError(f'MaskBoxDataset: cannot read mask '
                                 f'{info["seg_map_path"]}: {e}') from e
            mask = reduce_mask_channels(mask)
            if self.box_mode != 'instances':  # ids are kept for instances
                mask = binarize_mask(mask, self.mask_threshold)[0]
            info['gt_bboxes'] = boxes_from_mask(mask, self.box_mode,
                                                self.min_box_pixels)
        return data


@DATASETS.register_module()
class PennFudanDiscoveryDataset(NamedSampleErrorsMixin, BaseSegDataset):
    """Penn-Fudan pedestrians (``PNGImages/<name>.png``,
    ``Annotation/<name>.txt`` boxes, ``PedMasks/<name>_mask.png`` instance
    masks). Every pedestrian box is a ground truth (CorLoc: any pedestrian
    counts); the masks, binarised with ``LoadBinaryMask``, give person
    segmentation."""
    METAINFO = _FG_META

    def __init__(self, data_prefix: Optional[dict] = None, **kwargs):
        super().__init__(
            data_prefix=data_prefix or dict(img_path='PNGImages',
                                            seg_map_path='PedMasks'),
            img_suffix='.png', seg_map_suffix='_mask.png', **kwargs)

    def load_data_list(self) -> List[dict]:
        img_dir = self.data_prefix['img_path']
        mask_dir = self.data_prefix.get('seg_map_path')
        ann_dir = osp.join(self.data_root or '', 'Annotation')
        names = sorted(osp.basename(p)[:-4]
                       for p in glob.glob(osp.join(img_dir, '*.png')))
        if not names:
            raise FileNotFoundError(f'PennFudanDiscoveryDataset: no .png '
                                    f'image in {img_dir}')
        out = []
        for n in names:
            txt = osp.join(ann_dir, n + '.txt')
            if not osp.isfile(txt):
                raise FileNotFoundError(f'PennFudanDiscoveryDataset: '
                                        f'annotation {txt} missing')
            info = dict(img_path=osp.join(img_dir, n + '.png'),
                        gt_bboxes=parse_pennfudan_txt(txt), seg_fields=[],
                        reduce_zero_label=False, label_map=None)
            if mask_dir:
                info['seg_map_path'] = osp.join(mask_dir, n + '_mask.png')
            out.append(info)
        return out


@DATASETS.register_module()
class VideoFramesDataset(NamedSampleErrorsMixin, BaseDataset):
    """Frame folders (DAVIS layout by default): one item per sequence, or
    one per frame.

    Paths are templates relative to ``data_root`` with ``{seq}``:
    ``img_dir='{seq}/JPEGImages'`` and ``ann_dir='{seq}/Annotations'`` fit
    ``../shared/data/davis2016_video``; official DAVIS 2016 is
    ``img_dir='JPEGImages/480p/{seq}'``, ``ann_dir='Annotations/480p/{seq}'``.
    ``flow_dir`` (optional) holds one RGB flow rendering per frame (same file
    stem; the last one is repeated when there is one fewer, as the
    reference).

    ``items='clip'`` (default): one item per sequence (``seq_name``,
    ``img_paths``, ``ann_paths``, ``flow_paths``, ``frame_offset``) for
    ``LoadVideoFrames`` / ``PackVideoInputs`` and ``TokenCutVideo``. Every
    frame of a clip must have one size: the frame headers are read when the
    dataset is built and a frame of another size raises ``ValueError``
    naming the sequence, both frames and both sizes (before any model
    runs; ``check_frame_sizes=False`` defers the check to
    ``LoadVideoFrames``, which raises the same kind of error).

    ``items='frame'``: one image item per frame (``img_path``,
    ``seg_map_path``, ``seq_name``, ``frame_index``, ``gt_bboxes``) for the
    image pipeline (``LoadImageFromFile``, ``LoadBinaryMask``,
    ``PackSegInputs(meta_keys=DISCOVERY_META_KEYS + ('seq_name',))``) and
    image TokenCut: ground-truth boxes come from the annotation masks
    (:func:`boxes_from_mask` with ``box_mode``; an empty mask gives no box,
    a CorLoc miss). Frames may then differ in size.

    Args:
        sequences: names, or None for every folder matching ``img_dir``.
        items: ``'clip'`` or ``'frame'``.
        box_mode: ``'mask'`` (one box around the whole object mask) or
            ``'components'`` (``items='frame'`` only).
        max_frames_per_item: cut each sequence into items of at most this
            many frames (None: whole sequences).
        frame_limit: keep only the first frames of each sequence (tests).
        check_frame_sizes: check a clip's frame sizes when building.
    """
    METAINFO = _FG_META

    def __init__(self,
                 data_root: str,
                 sequences: Optional[Sequence[str]] = None,
                 img_dir: str = '{seq}/JPEGImages',
                 ann_dir: Optional[str] = '{seq}/Annotations',
                 flow_dir: Optional[str] = None,
                 img_suffix: str = '.jpg',
                 items: str = 'clip',
                 box_mode: str = 'mask',
                 max_frames_per_item: Optional[int] = None,
                 frame_limit: Optional[int] = None,
                 check_frame_sizes: bool = True,
                 **kwargs):
        if items not in ('clip', 'frame'):
            raise ValueError(f"VideoFramesDataset: items must be 'clip' or "
                             f"'frame', got {items!r}")
        if items == 'frame' and not ann_dir:
            raise ValueError("VideoFramesDataset: items='frame' needs "
                             'ann_dir (boxes come from the masks)')
        self.items = items
        self.box_mode = box_mode
        self.check_frame_sizes = check_frame_sizes
        self.sequences = list(sequences) if sequences else None
        self.img_dir, self.ann_dir, self.flow_dir = img_dir, ann_dir, flow_dir
        self.img_suffix = img_suffix
        self.max_frames_per_item = max_frames_per_item
        self.frame_limit = frame_limit
        super().__init__(data_root=data_root, **kwargs)

    def _dir(self, tmpl, seq):
        return osp.join(self.data_root, tmpl.format(seq=seq))

    def load_data_list(self) -> List[dict]:
        seqs = self.sequences
        if seqs is None:
            pat = self._dir(self.img_dir, '*')
            seqs = sorted(
                osp.relpath(p, self.data_root).split(osp.sep)[
                    self.img_dir.split('/').index('{seq}')]
                for p in glob.glob(pat) if osp.isdir(p))
        if not seqs:
            raise FileNotFoundError(f'VideoFramesDataset: no sequence under '
                                    f'{self.data_root} ({self.img_dir})')
        out = []
        for seq in seqs:
            d = self._dir(self.img_dir, seq)
            frames = sorted(glob.glob(osp.join(d, '*' + self.img_suffix)))
            if self.frame_limit:
                frames = frames[:self.frame_limit]
            if not frames:
                raise FileNotFoundError(f'VideoFramesDataset: sequence {seq} '
                                        f'has no *{self.img_suffix} frame in '
                                        f'{d}')
            stems = [osp.splitext(osp.basename(f))[0] for f in frames]
            anns = None
            if self.ann_dir:
                ad = self._dir(self.ann_dir, seq)
                anns = [osp.join(ad, s + '.png') for s in stems]
                missing = [a for a in anns if not osp.isfile(a)]
                if missing:
                    raise FileNotFoundError(
                        f'VideoFramesDataset: {len(missing)} annotation(s) '
                        f'of {seq} missing, e.g. {missing[0]}')
            flows = None
            if self.flow_dir:
                fd = self._dir(self.flow_dir, seq)
                avail = sorted(glob.glob(osp.join(fd, '*')))
                if not avail:
                    raise FileNotFoundError(f'VideoFramesDataset: no flow '
                                            f'rendering in {fd}')
                flows = (avail + [avail[-1]] * len(frames))[:len(frames)]
            if self.items == 'frame':
                out.extend(self._frame_items(seq, frames, anns))
                continue
            if self.check_frame_sizes:
                check_clip_frame_sizes(seq, frames)
            step = self.max_frames_per_item or len(frames)
            for t0 in range(0, len(frames), step):
                sl = slice(t0, t0 + step)
                out.append(dict(
                    seq_name=seq, img_paths=frames[sl], frame_offset=t0,
                    ann_paths=anns[sl] if anns else None,
                    flow_paths=flows[sl] if flows else None))
        return out

    def _frame_items(self, seq: str, frames: List[str],
                     anns: List[str]) -> List[dict]:
        out = []
        for t, (img, ann) in enumerate(zip(frames, anns)):
            try:
                mask = reduce_mask_channels(np.asarray(Image.open(ann)))
            except OSError as e:
                raise ValueError(f'VideoFramesDataset: sequence {seq}: cannot '
                                 f'read mask {ann}: {e}') from e
            fg = binarize_mask(mask)[0]
            out.append(dict(img_path=img, seg_map_path=ann, seq_name=seq,
                            frame_index=t,
                            gt_bboxes=boxes_from_mask(fg, self.box_mode),
                            seg_fields=[], reduce_zero_label=False,
                            label_map=None))
        return out


def check_clip_frame_sizes(seq: str, frames: Sequence[str]) -> None:
    """Raise ValueError unless every frame file of a clip has the size of
    its first frame (only the image headers are read).

    Args:
        seq: sequence name (for the message).
        frames: frame file paths, in clip order.
    """
    first = None
    for t, path in enumerate(frames):
        try:
            with Image.open(path) as im:
                size = im.size
        except OSError as e:
            raise ValueError(f'VideoFramesDataset: sequence {seq}: cannot '
                             f'read frame {t} ({path}): {e}') from e
        if first is None:
            first = size
        elif size != first:
            raise ValueError(
                f'VideoFramesDataset: sequence {seq}: frame {t} ({path}) is '
                f'{size[0]}x{size[1]} (WxH) but frame 0 ({frames[0]}) is '
                f'{first[0]}x{first[1]}; every frame of a clip must have '
                'one size (resize the sequence\'s frames to one size, or '
                "evaluate its frames one by one with items='frame')")
