"""Binary salient-object datasets: sod_bsds, DUTS, ECSSD, DUT-OMRON, HKU-IS."""
import os.path as osp
import warnings
from typing import Dict, List, Optional, Union

import mmengine
import mmengine.fileio as fileio
from mmseg.datasets import BaseSegDataset

from vtseg.registry import DATASETS
from .sample_errors import NamedSampleErrorsMixin

__all__ = ['SALIENCY_LAYOUTS', 'SaliencyDataset']

#: Folder layouts, relative to ``data_root``: image folder, mask folder and
#: file suffixes. ``<id><img_suffix>`` pairs with ``<id><seg_map_suffix>``.
SALIENCY_LAYOUTS: Dict[str, dict] = {
    # Generic layout, e.g. ../shared/data/sod_bsds: images/<id>.jpg,
    # masks/<id>.png.
    'folder':
    dict(
        img_path='images',
        seg_map_path='masks',
        img_suffix='.jpg',
        seg_map_suffix='.png'),
    # DUTS (Wang et al., CVPR 2017), data_root holds DUTS-TR/ and DUTS-TE/.
    'duts-tr':
    dict(
        img_path='DUTS-TR/DUTS-TR-Image',
        seg_map_path='DUTS-TR/DUTS-TR-Mask',
        img_suffix='.jpg',
        seg_map_suffix='.png'),
    'duts-te':
    dict(
        img_path='DUTS-TE/DUTS-TE-Image',
        seg_map_path='DUTS-TE/DUTS-TE-Mask',
        img_suffix='.jpg',
        seg_map_suffix='.png'),
    # ECSSD (Yan et al., CVPR 2013; Shi et al., TPAMI 2016).
    'ecssd':
    dict(
        img_path='images',
        seg_map_path='ground_truth_mask',
        img_suffix='.jpg',
        seg_map_suffix='.png'),
    # DUT-OMRON (Yang et al., CVPR 2013).
    'dut-omron':
    dict(
        img_path='DUT-OMRON-image',
        seg_map_path='pixelwiseGT-new-PNG',
        img_suffix='.jpg',
        seg_map_suffix='.png'),
    # HKU-IS (Li & Yu, CVPR 2015).
    'hku-is':
    dict(
        img_path='imgs', seg_map_path='gt', img_suffix='.png',
        seg_map_suffix='.png'),
}

_SPLITS = ('all', 'train', 'val')
_MAX_LISTED = 5


def _few(items: List[str]) -> str:
    shown = ', '.join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f' (and {more} more)' if more > 0 else '')


@DATASETS.register_module()
class SaliencyDataset(NamedSampleErrorsMixin, BaseSegDataset):
    """Binary salient-object dataset: classes ('background', 'foreground').

    Image ``<img_path>/<id><img_suffix>`` pairs with mask
    ``<seg_map_path>/<id><seg_map_suffix>``; ``layout`` picks the folder
    names and suffixes of a known benchmark (:data:`SALIENCY_LAYOUTS`:
    ``'folder'`` = ``images/*.jpg`` + ``masks/*.png``, ``'duts-tr'``,
    ``'duts-te'``, ``'ecssd'``, ``'dut-omron'``, ``'hku-is'``), and
    ``data_prefix`` / ``img_suffix`` / ``seg_map_suffix`` override any part
    of it. Masks are binarised by the ``LoadBinaryMask`` transform, which
    the pipeline must use (mmseg's ``LoadAnnotations`` would keep 0/255
    masks as they are and read 255 as "ignore").

    Ids: the lines of ``ann_file`` (one id per line, in file order; blank
    lines and lines starting with ``#`` skipped; a trailing ``img_suffix``
    is stripped) or else every ``*<img_suffix>`` file under the image folder
    (recursively), sorted by id (as strings).

    Deterministic split (no split files needed): with ``split='train'`` the
    dataset keeps the first ``num_train`` ids of that list, with
    ``split='val'`` the remaining ones, with ``split='all'`` (default) all.
    ``num_train`` is a count (int) or a fraction of the ids (float in
    (0, 1), rounded to the nearest count). Example, sod_bsds' 150 sorted ids:
    ``split='train', num_train=100`` -> the first 100, ``split='val',
    num_train=100`` -> the last 50.

    Errors name the file: a missing image or mask folder, no image with the
    suffix, an ``ann_file`` id without image, an image without mask; and a
    sample whose image or mask cannot be loaded raises with both paths.

    Args:
        layout: key of :data:`SALIENCY_LAYOUTS`.
        split: ``'all'``, ``'train'`` or ``'val'``.
        num_train: size of the train part (needed unless ``split='all'``).
        data_prefix: ``dict(img_path=..., seg_map_path=...)`` relative to
            ``data_root``; missing keys come from the layout.
            ``seg_map_path=None`` lists images without masks (inference).
        img_suffix, seg_map_suffix: override the layout's suffixes.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments
            (``data_root``, ``ann_file``, ``pipeline``, ``test_mode``,
            ``indices``, ``backend_args``, ...).
    """
    METAINFO = dict(
        classes=('background', 'foreground'),
        palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self,
                 layout: str = 'folder',
                 split: str = 'all',
                 num_train: Optional[Union[int, float]] = None,
                 data_prefix: Optional[dict] = None,
                 img_suffix: Optional[str] = None,
                 seg_map_suffix: Optional[str] = None,
                 **kwargs) -> None:
        if layout not in SALIENCY_LAYOUTS:
            raise ValueError(f'SaliencyDataset: unknown layout {layout!r}; '
                             f'choose one of {sorted(SALIENCY_LAYOUTS)} or '
                             "use 'folder' with data_prefix/suffix overrides")
        if split not in _SPLITS:
            raise ValueError(f'SaliencyDataset: split must be one of '
                             f'{_SPLITS}, got {split!r}')
        if split != 'all':
            if num_train is None:
                raise ValueError(f"SaliencyDataset: split={split!r} needs "
                                 'num_train (count or fraction of the ids)')
            if isinstance(num_train, bool) or not (
                    (isinstance(num_train, int) and num_train >= 0) or
                    (isinstance(num_train, float) and 0 < num_train < 1)):
                raise ValueError('SaliencyDataset: num_train must be an int '
                                 '>= 0 or a float in (0, 1), got '
                                 f'{num_train!r}')
        preset = SALIENCY_LAYOUTS[layout]
        prefix = dict(
            img_path=preset['img_path'], seg_map_path=preset['seg_map_path'])
        prefix.update(data_prefix or {})
        # mmengine joins every prefix with data_root: drop a None mask folder
        prefix = {k: v for k, v in prefix.items() if v is not None}
        self.layout = layout
        self.split = split
        self.num_train = num_train
        pipeline = kwargs.get('pipeline', [])
        for t in pipeline:
            if isinstance(t, dict) and t.get('type') in (
                    'LoadAnnotations', 'mmseg.LoadAnnotations'):
                warnings.warn(
                    'SaliencyDataset: the pipeline uses LoadAnnotations, '
                    'which keeps raw mask values (0/255 masks would read as '
                    "'ignore'); use LoadBinaryMask")
        super().__init__(
            data_prefix=prefix,
            img_suffix=preset['img_suffix']
            if img_suffix is None else img_suffix,
            seg_map_suffix=preset['seg_map_suffix']
            if seg_map_suffix is None else seg_map_suffix,
            **kwargs)

    def describe(self) -> str:
        return (f'SaliencyDataset(layout={self.layout!r}, '
                f'data_root={self.data_root!r})')

    def _check_dir(self, path: Optional[str], what: str) -> None:
        if not path or not fileio.isdir(path, backend_args=self.backend_args):
            suffix = self.img_suffix if what == 'image' \
                else self.seg_map_suffix
            raise FileNotFoundError(
                f'{self.describe()}: {what} folder {path} does not exist '
                f'(expected <{what} folder>/<id>{suffix})')

    def _list_ids(self, img_dir: str) -> List[str]:
        if self.ann_file:
            if not fileio.isfile(self.ann_file,
                                 backend_args=self.backend_args):
                raise FileNotFoundError(f'{self.describe()}: ann_file '
                                        f'{self.ann_file} does not exist')
            ids = []
            for line in mmengine.list_from_file(
                    self.ann_file, backend_args=self.backend_args):
                line = line.strip()
                if not line or line.startswith('#'):
                    continue
                if self.img_suffix and line.endswith(self.img_suffix):
                    line = line[:-len(self.img_suffix)]
                ids.append(line)
            missing = [
                osp.join(img_dir, i + self.img_suffix) for i in ids
                if not fileio.isfile(
                    osp.join(img_dir, i + self.img_suffix),
                    backend_args=self.backend_args)
            ]
            if missing:
                raise FileNotFoundError(
                    f'{self.describe()}: {len(missing)} id(s) of ann_file '
                    f'{self.ann_file} have no image: {_few(missing)}')
            where = f'ann_file {self.ann_file}'
        else:
            n = len(self.img_suffix)
            ids = sorted(
                f[:-n] if n else f for f in fileio.list_dir_or_file(
                    img_dir,
                    list_dir=False,
                    suffix=self.img_suffix or None,
                    recursive=True,
                    backend_args=self.backend_args))
            where = f'image folder {img_dir} (suffix {self.img_suffix!r})'
        if not ids:
            raise FileNotFoundError(f'{self.describe()}: no image ids found '
                                    f'in {where}')
        return ids

    def _select_split(self, ids: List[str]) -> List[str]:
        if self.split == 'all':
            return ids
        n_train = self.num_train if isinstance(self.num_train, int) \
            else int(round(self.num_train * len(ids)))
        if n_train > len(ids):
            raise ValueError(f'{self.describe()}: num_train={n_train} '
                             f'exceeds the {len(ids)} ids')
        chosen = ids[:n_train] if self.split == 'train' else ids[n_train:]
        if not chosen:
            raise ValueError(f'{self.describe()}: split {self.split!r} is '
                             f'empty ({len(ids)} ids, num_train={n_train})')
        return chosen

    def load_data_list(self) -> List[dict]:
        """List ``dict(img_path, seg_map_path, ...)`` for the chosen ids.

        Returns:
            list of data infos in id order (see the class docstring).
        """
        img_dir = self.data_prefix.get('img_path')
        mask_dir = self.data_prefix.get('seg_map_path')
        self._check_dir(img_dir, 'image')
        if mask_dir is not None:
            self._check_dir(mask_dir, 'mask')
        ids = self._select_split(self._list_ids(img_dir))

        data_list = []
        no_mask = []
        for img_id in ids:
            info = dict(img_path=osp.join(img_dir, img_id + self.img_suffix))
            if mask_dir is not None:
                mask = osp.join(mask_dir, img_id + self.seg_map_suffix)
                if not fileio.isfile(mask, backend_args=self.backend_args):
                    no_mask.append(f'{info["img_path"]} (expected {mask})')
                info['seg_map_path'] = mask
            info['label_map'] = self.label_map
            info['reduce_zero_label'] = self.reduce_zero_label
            info['seg_fields'] = []
            data_list.append(info)
        if no_mask:
            raise FileNotFoundError(f'{self.describe()}: {len(no_mask)} '
                                    f'image(s) without mask: {_few(no_mask)}')
        return data_list
