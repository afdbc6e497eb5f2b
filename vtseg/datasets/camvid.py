"""CamVid (11-class SegNet relabelling) and a synthetic smoke dataset."""
import os
import os.path as osp
from collections import defaultdict
from typing import List

import cv2
import numpy as np
from mmseg.datasets import BaseSegDataset

from vtseg.registry import DATASETS
from .sample_errors import NamedSampleErrorsMixin


@DATASETS.register_module()
class CamVidDataset(NamedSampleErrorsMixin, BaseSegDataset):
    """CamVid in the SegNet layout (``train/``, ``trainannot/``, ``val/``,
    ``valannot/``, ``test/``, ``testannot/``; images and labels share a file
    name). Labels are uint8 class ids 0..10; 11 (void) is mapped to 255 and
    ignored.

    Args:
        split: ``'all'`` keeps every frame of the folder; ``'train'`` /
            ``'val'`` split each sequence (file-name prefix before the first
            ``_``) in time: the last ``val_fraction`` of its frames (sorted
            by name) are ``'val'``, the rest ``'train'``. Held-out frames are
            thus later in each sequence than every training frame. Used to
            train and evaluate on a single folder such as the 40 test frames
            in ``../shared/data/camvid_segnet``.
        val_fraction: fraction of each sequence held out for ``'val'``.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments.
    """
    METAINFO = dict(
        classes=('sky', 'building', 'pole', 'road', 'pavement', 'tree',
                 'sign_symbol', 'fence', 'car', 'pedestrian', 'bicyclist'),
        palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128],
                 [128, 64, 128], [60, 40, 222], [128, 128, 0],
                 [192, 128, 128], [64, 64, 128], [64, 0, 128],
                 [64, 64, 0], [0, 128, 192]])

    def __init__(self, split: str = 'all', val_fraction: float = 0.25,
                 img_suffix='.png', seg_map_suffix='.png', **kwargs):
        if split not in ('all', 'train', 'val'):
            raise ValueError(
                f"CamVidDataset split must be 'all', 'train' or 'val', got "
                f'{split!r}')
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f'val_fraction must be in (0, 1), got '
                             f'{val_fraction}')
        self.split = split
        self.val_fraction = val_fraction
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         **kwargs)

    def load_data_list(self) -> List[dict]:
        img_dir = self.data_prefix.get('img_path', '')
        ann_dir = self.data_prefix.get('seg_map_path', '')
        for d, what in ((img_dir, 'image'), (ann_dir, 'label')):
            if d and not osp.isdir(d):
                raise FileNotFoundError(
                    f'CamVidDataset: {what} folder not found: {d}')
        data_list = super().load_data_list()
        if not data_list:
            raise FileNotFoundError(
                f'CamVidDataset: no *{self.img_suffix} images in {img_dir}')
        for info in data_list:
            if info.get('seg_map_path') and not osp.isfile(
                    info['seg_map_path']):
                raise FileNotFoundError(
                    f'CamVidDataset: label {info["seg_map_path"]} missing for '
                    f'image {info["img_path"]}')
            # void (11) -> ignore index
            info['label_map'] = {11: 255}
        if self.split == 'all':
            return data_list
        by_seq = defaultdict(list)
        for info in data_list:
            name = osp.basename(info['img_path'])
            by_seq[name.split('_')[0]].append(info)
        keep = []
        for seq in sorted(by_seq):
            items = sorted(by_seq[seq], key=lambda d: d['img_path'])
            n_val = max(1, int(round(len(items) * self.val_fraction)))
            keep += items[-n_val:] if self.split == 'val' else \
                items[:-n_val]
        return keep


@DATASETS.register_module()
class SmokeSegDataset(NamedSampleErrorsMixin, BaseSegDataset):
    """A tiny synthetic segmentation dataset, generated on first use.

    Each image shows a few filled rectangles and ellipses of 3 classes on a
    textured background (class 0); the label map is exact. Deterministic for
    a given ``seed``. Useful to smoke-test a config end to end without any
    downloaded data.

    Args:
        data_root: folder to write ``img_dir/*.png`` and ``ann_dir/*.png``.
        num_images: how many images to generate.
        image_size: (H, W).
        seed: RNG seed; different seeds give disjoint train/val sets.
    """
    METAINFO = dict(
        classes=('background', 'rectangle', 'ellipse', 'triangle'),
        palette=[[0, 0, 0], [220, 20, 60], [0, 128, 255], [255, 200, 0]])

    def __init__(self, data_root: str, num_images: int = 16,
                 image_size=(96, 128), seed: int = 0, **kwargs):
        self.num_images = num_images
        self.image_size = tuple(image_size)
        self.seed = seed
        kwargs.setdefault('data_prefix',
                          dict(img_path='img_dir', seg_map_path='ann_dir'))
        self._generate(data_root, kwargs['data_prefix'])
        super().__init__(data_root=data_root, img_suffix='.png',
                         seg_map_suffix='.png', **kwargs)

    def _generate(self, root: str, prefix: dict):
        img_dir = osp.join(root, prefix['img_path'])
        ann_dir = osp.join(root, prefix['seg_map_path'])
        stamp = osp.join(root, f'.smoke_{self.seed}_{self.num_images}_'
                         f'{self.image_size[0]}x{self.image_size[1]}')
        if osp.isfile(stamp):
            return
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        rng = np.random.default_rng(self.seed)
        H, W = self.image_size
        palette = np.array(self.METAINFO['palette'], np.uint8)
        for i in range(self.num_images):
            label = np.zeros((H, W), np.uint8)
            for _ in range(rng.integers(2, 5)):
                cls = int(rng.integers(1, 4))
                cy, cx = rng.integers(0, H), rng.integers(0, W)
                ry, rx = rng.integers(H // 10, H // 3), rng.integers(
                    W // 10, W // 3)
                if cls == 1:
                    cv2.rectangle(label, (int(cx - rx), int(cy - ry)),
                                  (int(cx + rx), int(cy + ry)), cls, -1)
                elif cls == 2:
                    cv2.ellipse(label, (int(cx), int(cy)), (int(rx), int(ry)),
                                0, 0, 360, cls, -1)
                else:
                    pts = np.array([[cx, cy - ry], [cx - rx, cy + ry],
                                    [cx + rx, cy + ry]], np.int32)
                    cv2.fillPoly(label, [pts], cls)
            noise = rng.normal(0, 25, (H, W, 3))
            img = np.clip(palette[label].astype(np.float32) * 0.8 + 30 +
                          noise, 0, 255).astype(np.uint8)
            name = f'smoke_{self.seed}_{i:04d}.png'
            cv2.imwrite(osp.join(img_dir, name), img[..., ::-1])
            cv2.imwrite(osp.join(ann_dir, name), label)
        open(stamp, 'w').close()

