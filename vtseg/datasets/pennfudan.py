"""Penn-Fudan pedestrians (Wang et al., ACCV 2007) with instance masks."""
import os.path as osp
from typing import List

import mmengine.fileio as fileio
from mmseg.datasets import BaseSegDataset

from vtseg.registry import DATASETS
from .sample_errors import NamedSampleErrorsMixin

__all__ = ['PennFudanDataset', 'pennfudan_split']

_SPLITS = ('all', 'train', 'val')


def pennfudan_split(names: List[str], split: str, val_every: int,
                    owner: str = 'PennFudanDataset') -> List[str]:
    """The fixed Penn-Fudan split: of the sorted ``names``, ``'val'`` keeps
    positions ``val_every - 1, 2 * val_every - 1, ...``, ``'train'`` the
    others, ``'all'`` everything (shared by the segmentation and the
    detection dataset, docs/connnet.md and docs/detection.md)."""
    if split not in _SPLITS:
        raise ValueError(f'{owner}: split must be one of {_SPLITS}, got '
                         f'{split!r}')
    if not isinstance(val_every, int) or val_every < 2:
        raise ValueError(f'{owner}: val_every must be an int >= 2, got '
                         f'{val_every!r}')
    names = sorted(names)
    if split == 'all':
        return names
    return [
        n for i, n in enumerate(names)
        if ((i % val_every) == val_every - 1) == (split == 'val')
    ]


@DATASETS.register_module()
class PennFudanDataset(NamedSampleErrorsMixin, BaseSegDataset):
    """Penn-Fudan pedestrian photos with instance masks.

    Layout under ``data_root``: ``PNGImages/<name>.png`` and
    ``PedMasks/<name>_mask.png`` (8-bit PNG, 0 = background, 1..k = one id
    per pedestrian). Load the mask with mmseg's ``LoadAnnotations``
    (``imdecode_backend='pillow'`` keeps the raw ids): ``gt_seg_map`` then
    holds **instance ids**, which is what an instance-aware connectivity
    loss (``ConnectivityLoss(instance_aware=True)``) and the
    ``InstanceMaskAPMetric`` (reads the mask file itself) expect. For
    binary person segmentation load the mask with ``LoadBinaryMask``
    instead (ids > 0 become 1). Classes: ('background', 'pedestrian').

    Deterministic split (no split files): ids are the image names sorted;
    ``split='val'`` keeps every ``val_every``-th one (positions
    ``val_every - 1, 2 * val_every - 1, ...``), ``split='train'`` the
    others, ``split='all'`` everything. With the 50-image subset of
    ``../shared/data/pennfudanped`` and ``val_every=3`` that is 34 train /
    16 val images, both mixing Fudan and Penn photos.

    Args:
        split: ``'all'``, ``'train'`` or ``'val'``.
        val_every: spacing of the validation images.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` args (``data_root``,
            ``pipeline``, ``test_mode``, ...).
    """
    METAINFO = dict(
        classes=('background', 'pedestrian'),
        palette=[[0, 0, 0], [220, 20, 60]])

    def __init__(self, split: str = 'all', val_every: int = 3, **kwargs):
        pennfudan_split([], split, val_every)  # checks the arguments
        self.split = split
        self.val_every = val_every
        kwargs.setdefault('data_prefix',
                          dict(img_path='PNGImages', seg_map_path='PedMasks'))
        kwargs.setdefault('img_suffix', '.png')
        kwargs.setdefault('seg_map_suffix', '_mask.png')
        kwargs.setdefault('reduce_zero_label', False)
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        """Sorted ``dict(img_path, seg_map_path, ...)`` of the split."""
        img_dir = self.data_prefix.get('img_path')
        mask_dir = self.data_prefix.get('seg_map_path')
        for path, what in ((img_dir, 'image'), (mask_dir, 'mask')):
            if path is not None and not fileio.isdir(
                    path, backend_args=self.backend_args):
                raise FileNotFoundError(f'PennFudanDataset: {what} folder '
                                        f'{path} does not exist')
        n = len(self.img_suffix)
        names = sorted(
            f[:-n] for f in fileio.list_dir_or_file(
                img_dir, list_dir=False, suffix=self.img_suffix,
                backend_args=self.backend_args))
        if not names:
            raise FileNotFoundError(f'PennFudanDataset: no *{self.img_suffix}'
                                    f' image in {img_dir}')
        names = pennfudan_split(names, self.split, self.val_every)
        data_list = []
        for name in names:
            info = dict(img_path=osp.join(img_dir, name + self.img_suffix),
                        label_map=self.label_map,
                        reduce_zero_label=self.reduce_zero_label,
                        seg_fields=[])
            if mask_dir is not None:
                mask = osp.join(mask_dir, name + self.seg_map_suffix)
                if not fileio.isfile(mask, backend_args=self.backend_args):
                    raise FileNotFoundError(
                        f'PennFudanDataset: image {info["img_path"]} has no '
                        f'mask (expected {mask})')
                info['seg_map_path'] = mask
            data_list.append(info)
        return data_list
