"""Build a model from a config and run it on images (any vtseg model)."""
import logging
import os.path as osp
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from vtseg.compat import safe_torch_load
from vtseg.models.utils.checkpoint import (extract_state_dict, fit_state_dict,
                                           format_keys)
from vtseg.registry import DATASETS, MODELS
from vtseg.setup_env import register_all_modules
from vtseg.utils.config import check_cfg_options, check_top_level_keys
from vtseg.utils.image_io import read_image

ImageType = Union[str, np.ndarray]

# Transforms that load ground truth; inference has none.
_ANNOTATION_LOADERS = ('LoadAnnotations', 'LoadBinaryMask',
                       'LoadInstanceMasks', 'LoadBoxes')


def _load_cfg(config, cfg_options=None) -> Config:
    if isinstance(config, (str, Path)):
        if not osp.isfile(str(config)):
            raise FileNotFoundError(f'config file not found: {config}')
        config = Config.fromfile(str(config))
        check_top_level_keys(config, 'warn')
    elif not isinstance(config, Config):
        raise TypeError(f'config must be a path or Config, got '
                        f'{type(config)}')
    if cfg_options:
        check_cfg_options(config, cfg_options, 'cfg_options')
        config.merge_from_dict(cfg_options)
    return config


def _dataset_meta(cfg: Config, model) -> dict:
    """Class names and palette: test dataset class, else generic."""
    ds = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    ds_type = ds.get('type') if isinstance(ds, dict) else None
    if ds_type is not None:
        cls = DATASETS.get(ds_type)
        if cls is not None and getattr(cls, 'METAINFO', None):
            return dict(cls.METAINFO)
    head = getattr(model, 'decode_head', None)
    n = getattr(head, 'num_classes', 2)
    rng = np.random.default_rng(0)
    return dict(classes=tuple(f'class_{i}' for i in range(n)),
                palette=rng.integers(0, 255, (n, 3)).tolist())


def init_model(config: Union[str, Path, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None,
               strict: bool = True):
    """Build a model from a config and load a checkpoint.

    Args:
        config: config path or :class:`mmengine.Config`.
        checkpoint: checkpoint path (weights-only load); None keeps the
            config's initialisation (``init_cfg``, e.g. a backbone-only
            pretrained checkpoint).
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ...
        cfg_options: config overrides (keys are checked, see
            :func:`vtseg.utils.config.check_cfg_options`).
        strict: refuse checkpoints with missing / unexpected / mis-shaped
            keys (error names them; prefixes the model declares in
            ``ignored_checkpoint_prefixes`` are dropped with a log line).
            ``False`` loads the tensors that fit and logs the others as a
            warning (partial loading; a checkpoint of which nothing fits is
            still refused). docs/reliability.md#checkpoint-loading.

    Returns:
        The model in eval mode, with ``cfg``, ``dataset_meta`` and
        ``untrained_keys`` (:func:`untrained_keys` when no checkpoint was
        given, else ``[]``; a warning names them) attached.
    """
    register_all_modules(init_default_scope=False)
    cfg = _load_cfg(config, cfg_options)
    init_default_scope(cfg.get('default_scope', 'vtseg'))
    model_cfg = cfg.model.copy()
    model_cfg['train_cfg'] = None
    model = MODELS.build(model_cfg)
    meta = None
    model.untrained_keys = []
    if checkpoint is None:
        if hasattr(model, 'init_weights'):
            model.init_weights()
        model.untrained_keys = untrained_keys(model)
        if model.untrained_keys:
            print_log(
                'init_model: no checkpoint, and the config\'s init_cfg loads '
                f'no pretrained weights for {len(model.untrained_keys)} '
                f'tensors ({format_keys(model.untrained_keys, 3)}): they '
                'are randomly initialised, so the predictions are '
                'meaningless', logger='current', level=logging.WARNING)
    else:
        ckpt = safe_torch_load(checkpoint, map_location='cpu')
        sd = extract_state_dict(ckpt, checkpoint)
        fit = fit_state_dict(model, sd, checkpoint, partial=not strict,
                             hint='Use a checkpoint of this config, or '
                             'init_model(..., strict=False) to load the '
                             'fitting tensors only')
        model.load_state_dict(fit.loadable, strict=strict)
        meta = (ckpt.get('meta') or {}).get('dataset_meta') if isinstance(
            ckpt, dict) else None
    model.cfg = cfg
    model.dataset_meta = meta or _dataset_meta(cfg, model)
    return model.to(device).eval()


def untrained_keys(model) -> List[str]:
    """State-dict keys that no ``init_cfg=dict(type='Pretrained', ...)``
    of the model or its submodules covers: without a checkpoint they keep
    their random initialisation (e.g. a decode head). ``[]`` for TokenCut,
    whose only weights are its pretrained backbone."""
    covered = []
    for name, module in model.named_modules():
        cfgs = getattr(module, 'init_cfg', None)
        cfgs = cfgs if isinstance(cfgs, list) else [cfgs]
        if any(isinstance(c, dict) and c.get('type') == 'Pretrained'
               for c in cfgs):
            covered.append(f'{name}.' if name else '')
    return [k for k in model.state_dict()
            if not any(k.startswith(p) for p in covered)]


def build_test_pipeline(cfg: Config, from_array: bool = False) -> Compose:
    """The config's test pipeline without ground-truth loading."""
    ds = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    pipeline = ds.get('pipeline') if isinstance(ds, dict) else None
    if pipeline is None:
        pipeline = cfg.get('test_pipeline')
    if pipeline is None:
        raise KeyError('config has neither test_dataloader.dataset.pipeline '
                       'nor test_pipeline')
    steps = []
    for t in pipeline:
        t = dict(t)
        if t['type'] in _ANNOTATION_LOADERS:
            continue
        if from_array and t['type'] == 'LoadImageFromFile':
            t = dict(type='LoadImageFromNDArray')
        steps.append(t)
    return Compose(steps)


def _image_array(item: ImageType) -> np.ndarray:
    # read_image refuses empty, corrupt and truncated files by name
    arr = read_image(item) if isinstance(item, str) else item
    if not isinstance(arr, np.ndarray) or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError('expected an image path or an (H, W, 3) BGR array, '
                         f'got {type(arr)} {getattr(arr, "shape", "")}')
    return arr


@torch.no_grad()
def prepare_inputs(model, img: ImageType) -> torch.Tensor:
    """The network input for one image: the config's test pipeline, then the
    model's data preprocessor (normalised, padded), (1, 3, H, W)."""
    pipeline = build_test_pipeline(model.cfg, from_array=True)
    data = pipeline(dict(img=_image_array(img), img_path=None))
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
        False)
    return batch['inputs']


@torch.no_grad()
def inference_model(model, img: Union[ImageType, Sequence[ImageType]]):
    """Run a model on one image or a list of images.

    Args:
        model: a model from :func:`init_model`.
        img: an image path, a BGR ``np.ndarray`` (H, W, 3) uint8 (as read by
            OpenCV), or a list of them.

    Returns:
        A :class:`mmseg.structures.SegDataSample` (or a list for list
        input) holding whatever the model predicts: ``pred_sem_seg`` and
        ``seg_logits`` for segmentation / saliency, ``pred_instances``
        (boxes, masks, scores) for discovery and instances.

    Raises:
        FileNotFoundError, vtseg.utils.image_io.ImageReadError: a path that
            is missing, empty, corrupt or truncated (named); with a list,
            every image is read before the model runs on any.
    """
    single = not isinstance(img, (list, tuple))
    imgs = [img] if single else list(img)
    pipeline = build_test_pipeline(model.cfg, from_array=True)
    arrays = [_image_array(item) for item in imgs]
    results = []
    for item, arr in zip(imgs, arrays):
        data = pipeline(dict(img=arr, img_path=item if isinstance(
            item, str) else None))
        batch = dict(inputs=[data['inputs']],
                     data_samples=[data['data_samples']])
        results.extend(model.test_step(batch))
    return results[0] if single else results


def is_clip_model(model) -> bool:
    """True for models that segment whole clips at once (TokenCut video)."""
    return bool(getattr(model, 'is_clip_model', False))


@torch.no_grad()
def inference_video(model, frames: Sequence[np.ndarray]) -> list:
    """Segment consecutive video frames.

    Per-frame models run frame by frame (:func:`inference_model`). A clip
    model (:func:`is_clip_model`, e.g. ``TokenCutVideo``) gets all frames in
    one call through its config's test pipeline (its video loader resizes
    decoded frames as it would files).

    Args:
        frames: BGR (H, W, 3) uint8 arrays of equal size.

    Returns:
        One :class:`~mmseg.structures.SegDataSample` per frame, with
        ``seg_logits`` (1, H, W) and ``pred_sem_seg`` for clip models.
    """
    frames = [_image_array(f) for f in frames]
    if not frames:
        raise ValueError('inference_video: no frames')
    if not is_clip_model(model):
        return [inference_model(model, f) for f in frames]
    ds = (model.cfg.get('test_dataloader') or {}).get('dataset') or {}
    pipeline = Compose(ds.get('pipeline') or model.cfg.get('test_pipeline'))
    data = pipeline(dict(frames=frames, img_paths=None))
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
        False)
    clip = model.predict(batch['inputs'], batch['data_samples'])[0]
    out = []
    for t in range(len(frames)):
        s = SegDataSample(metainfo=dict(ori_shape=frames[t].shape[:2]))
        s.seg_logits = PixelData(data=clip.seg_logits.data[t:t + 1])
        s.pred_sem_seg = PixelData(data=clip.pred_sem_seg.data[t:t + 1])
        out.append(s)
    return out
