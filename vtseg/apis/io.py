"""Input / output helpers for the demos: image lists, frame sources,
output names that never collide with each other or with an input, and
prediction export (docs/reliability.md)."""
import glob
import os
import os.path as osp
import re
from collections import Counter
from typing import Iterator, List, Sequence, Tuple

import cv2
import numpy as np
import torch

from vtseg.analysis.benchmark import has_token_stages, speedup_vs_plain
from vtseg.utils.image_io import ImageReadError, read_image
from .inference import init_model, prepare_inputs

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_inputs(spec: str) -> Tuple[List[str], List[str]]:
    """Image files named by a file, a folder (sorted, non-recursive) or a
    glob pattern, and the files of the folder / glob that are not images.

    A folder or glob contributes the files with an image extension
    (:data:`IMAGE_EXTS`, any case); its other files (a video, a text file)
    are returned separately, for the demo's summary. A single file is taken
    as given (its decoder decides).

    Returns:
        ``(images, not_images)``, both sorted.

    Raises:
        FileNotFoundError: nothing at ``spec``, or no image among its files.
    """
    if osp.isdir(spec):
        found = [osp.join(spec, f) for f in os.listdir(spec)]
    elif any(c in spec for c in '*?['):
        found = glob.glob(spec, recursive=True)
    elif osp.isfile(spec):
        return [spec], []
    else:
        raise FileNotFoundError(f'no image, folder or glob match at {spec}')
    found = sorted(f for f in found if osp.isfile(f))
    images = [f for f in found if f.lower().endswith(IMAGE_EXTS)]
    others = [f for f in found if not f.lower().endswith(IMAGE_EXTS)]
    if not images:
        extra = (f' (found only {len(others)} other file(s), e.g. '
                 f'{osp.basename(others[0])}; image extensions: '
                 f'{", ".join(IMAGE_EXTS)})' if others else '')
        raise FileNotFoundError(f'no images found in {spec}{extra}')
    return images, others


def list_images(spec: str) -> List[str]:
    """Image files named by a file, a folder (sorted, non-recursive) or a
    glob pattern (:func:`list_inputs` without the non-image files). Raises
    FileNotFoundError when nothing matches."""
    return list_inputs(spec)[0]


def output_stems(files: Sequence[str]) -> List[str]:
    """Distinct output names (without extension) for input files.

    Each input gets its file stem (``photos/a.jpg`` -> ``a``). Inputs whose
    stems collide (``a.jpg`` and ``a.png``; ``x/a.jpg`` and ``y/a.jpg``;
    ``A.jpg`` and ``a.png``, which are one file on case-insensitive file
    systems) get their path relative to the inputs' common folder with
    separators and dots replaced by ``_`` (``a_jpg``, ``a_png``;
    ``x_a_jpg``); anything still equal gets ``_2``, ``_3``, ...

    Returns:
        one name per input, pairwise distinct (also ignoring case).
    """
    files = [osp.abspath(f) for f in files]
    stems = [osp.splitext(osp.basename(f))[0] for f in files]
    counts = Counter(s.casefold() for s in stems)
    root = osp.commonpath([osp.dirname(f) for f in files]) if files else ''
    names = []
    for f, stem in zip(files, stems):
        if counts[stem.casefold()] > 1:
            stem = re.sub(r'[^\w-]+', '_', osp.relpath(f, root))
        names.append(stem)
    seen: Counter = Counter()
    out = []
    taken = {n.casefold() for n in names}
    for name in names:
        key = name.casefold()
        seen[key] += 1
        if seen[key] > 1:
            i = seen[key]
            while f'{name}_{i}'.casefold() in taken:
                i += 1
            name = f'{name}_{i}'
            taken.add(name.casefold())
        out.append(name)
    return out


def _same_file(a: str, b: str) -> bool:
    if osp.exists(a) and osp.exists(b):
        return osp.samefile(a, b)
    return osp.normcase(osp.realpath(a)) == osp.normcase(osp.realpath(b))


def check_not_inputs(outputs: Sequence[str], inputs: Sequence[str],
                     out_dirs: Sequence[str] = ()) -> None:
    """Refuse outputs that would overwrite an input, and output folders that
    hold input files (a later run over that folder would read the outputs
    as inputs). Not bypassed by ``--force``.

    Raises:
        FileExistsError: naming the input and the option to change.
    """
    def folder(path):
        return osp.normcase(osp.realpath(path))

    for d in out_dirs:
        held = [f for f in inputs
                if folder(osp.dirname(osp.abspath(f))) == folder(d)]
        if held:
            raise FileExistsError(
                f'output folder {d} holds input images ({held[0]}'
                f'{" ..." if len(held) > 1 else ""}): outputs would mix with '
                'the inputs and could overwrite them; choose another output '
                'folder (--force does not change this)')
    by_path = {}
    for f in inputs:
        by_path[osp.normcase(osp.realpath(f))] = f
    for out in outputs:
        hit = by_path.get(osp.normcase(osp.realpath(out)))
        if hit is None and osp.exists(out):
            hit = next((f for f in inputs if _same_file(out, f)), None)
        if hit is not None:
            raise FileExistsError(
                f'output {out} would overwrite the input {hit}; choose '
                'another output location (--force does not change this)')


class FrameSource:
    """Frames of a video file (anything OpenCV reads) or a folder of frame
    images, as BGR uint8 arrays.

    A frame file of a folder that cannot be read (empty, corrupt,
    truncated) or whose size differs from the first good frame is skipped
    and recorded in ``skipped``; iteration goes on with the next file.

    Attributes:
        fps: frames per second (the video's, or ``default_fps`` for folders).
        num_frames: frame count (may be approximate for some codecs).
        skipped: ``[(file, reason)]`` of skipped frame files (folders), in
            order.
        not_images: files of a frame folder without an image extension.
    """

    def __init__(self, spec: str, default_fps: float = 24.0):
        self.spec = spec
        self._files = None
        self._cap = None
        self.skipped: List[Tuple[str, str]] = []
        self.not_images: List[str] = []
        if osp.isdir(spec):
            self._files, self.not_images = list_inputs(spec)
            self.fps = default_fps
            self.num_frames = len(self._files)
            if self.not_images:
                print(f'{spec}: ignoring {len(self.not_images)} file(s) '
                      'without an image extension (e.g. '
                      f'{osp.basename(self.not_images[0])})', flush=True)
        elif osp.isfile(spec):
            cap = cv2.VideoCapture(spec)
            ok, _ = cap.read() if cap.isOpened() else (False, None)
            if not ok:
                cap.release()
                raise ValueError(f'cannot read video {spec} (not a video '
                                 'OpenCV can decode, or empty)')
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._cap = cap
            self.fps = cap.get(cv2.CAP_PROP_FPS) or default_fps
            self.num_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        else:
            raise FileNotFoundError(f'no video file or frame folder at {spec}')

    def __iter__(self) -> Iterator[Tuple[int, np.ndarray]]:
        if self._files is not None:
            self.skipped = []
            size = None
            for i, f in enumerate(self._files):
                try:
                    img = read_image(f)
                except (FileNotFoundError, ImageReadError) as err:
                    self.skipped.append((f, str(err)))
                    continue
                if size is None:
                    size = img.shape[:2]
                elif img.shape[:2] != size:
                    self.skipped.append(
                        (f, f'frame is {img.shape[0]}x{img.shape[1]}, the '
                         f'first frame {size[0]}x{size[1]} (HxW)'))
                    continue
                yield i, img
            return
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        i = 0
        while True:
            ok, frame = self._cap.read()
            if not ok:
                break
            yield i, frame
            i += 1

    @property
    def files(self) -> List[str]:
        """The frame files of a folder source ([] for a video file)."""
        return list(self._files or [])

    def close(self):
        if self._cap is not None:
            self._cap.release()


def prediction_mask(data_sample) -> np.ndarray:
    """A raw mask image for a prediction: an instance-id map (uint16 when
    there are more than 255 instances), an 8-bit saliency map (0-255), or
    the class-index map."""
    if 'pred_instances' in data_sample and len(data_sample.pred_instances) \
            and 'masks' in data_sample.pred_instances:
        masks = data_sample.pred_instances.masks
        masks = masks.detach().cpu().numpy() if hasattr(masks, 'detach') \
            else np.asarray(masks)
        ids = np.zeros(masks.shape[1:], np.uint16 if len(masks) > 255 else
                       np.uint8)
        for i, m in enumerate(masks.astype(bool), start=1):
            ids[m & (ids == 0)] = i
        return ids
    if 'seg_logits' in data_sample and \
            data_sample.seg_logits.data.shape[0] == 1:
        prob = data_sample.seg_logits.data[0].detach().cpu().numpy()
        return np.clip(np.round(prob * 255), 0, 255).astype(np.uint8)
    seg = data_sample.pred_sem_seg.data[0].detach().cpu().numpy()
    return seg.astype(np.uint8 if seg.max() < 256 else np.uint16)


def check_outputs_free(paths: List[str], force: bool,
                       inputs: Sequence[str] = ()) -> None:
    """Refuse to overwrite existing outputs unless ``force``; refuse outputs
    that are one of ``inputs`` in any case (:func:`check_not_inputs`)."""
    check_not_inputs(paths, inputs)
    if force:
        return
    existing = [p for p in paths if osp.exists(p)]
    if existing:
        more = f' (and {len(existing) - 3} more)' if len(existing) > 3 else ''
        raise FileExistsError(
            f'output exists: {", ".join(existing[:3])}{more}; choose another '
            'output location or pass --force to overwrite')


def init_demo_model(config, checkpoint, device: str = 'cpu',
                    cfg_options=None, partial_load: bool = False):
    """:func:`init_model` for the demos, which refuse a model left with
    randomly initialised tensors (no checkpoint, and a config whose
    ``init_cfg`` does not cover every tensor): it would draw
    confident-looking nonsense.

    Raises:
        ValueError: naming the count and an example of the untrained
            tensors.
    """
    model = init_model(config, checkpoint, device, cfg_options=cfg_options,
                       strict=not partial_load)
    if model.untrained_keys:
        raise ValueError(
            f'no checkpoint given and the config\'s init_cfg leaves '
            f'{len(model.untrained_keys)} tensors randomly initialised '
            f'(e.g. {model.untrained_keys[0]}); pass a CHECKPOINT')
    return model


def is_cam_model(model) -> bool:
    """True for weakly supervised models with class activation maps
    (ToCo: ``classify`` and ``multi_scale_cam``)."""
    return hasattr(model, 'classify') and hasattr(model, 'multi_scale_cam')


def cam_overlay(model, img: np.ndarray, classes: Sequence[str] = (),
                alpha: float = 0.5) -> Tuple[np.ndarray, List[str]]:
    """CAM heat map of a ToCo model over an image (docs/toco.md).

    The classes are ``classes`` (names of the model's foreground classes)
    or, when empty, those the image classifier predicts (logit > 0; the
    top-scoring one when none is). The map is the maximum over those
    classes of the multi-scale + flip CAM (``test_cfg.cam_scales``),
    resized to the image.

    Args:
        img: (H, W, 3) BGR uint8.

    Returns:
        ((H, W, 3) RGB uint8 overlay, the class names shown).

    Raises:
        ValueError: naming an unknown class name.
    """
    names = list(model.dataset_meta['classes'][1:])
    inputs = prepare_inputs(model, img)
    with torch.no_grad():
        if classes:
            unknown = [c for c in classes if c not in names]
            if unknown:
                raise ValueError(f'unknown class name(s) {unknown}; the '
                                 f'model knows {", ".join(names)}')
            labels = torch.zeros(1, len(names), device=inputs.device)
            labels[0, [names.index(c) for c in classes]] = 1
        else:
            logits = model.classify(inputs)
            labels = (logits > 0).float()
            if labels.sum() == 0:
                labels[0, logits[0].argmax()] = 1
        cam, _ = model.multi_scale_cam(inputs, model.test_cfg.get(
            'cam_scales', model.cam_scales))
        heat = (cam * labels[:, :, None, None]).amax(1)[0].cpu().numpy()
    heat = cv2.resize(heat, (img.shape[1], img.shape[0]),
                      interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255),
                               cv2.COLORMAP_JET)
    out = cv2.addWeighted(img, 1 - alpha, colour, alpha, 0)[..., ::-1]
    shown = [names[i] for i in np.flatnonzero(labels[0].cpu().numpy())]
    return np.ascontiguousarray(out), shown


def report_speedup(model, img: np.ndarray, threads=None) -> None:
    """For a model with token stages (Expedit, ...): time it against the same
    model without them on ``img`` (interleaved rounds) and print the
    speed-up. Models without token stages print nothing."""
    if not has_token_stages(model):
        return
    res = speedup_vs_plain(model, prepare_inputs(model, img),
                           threads=threads)
    print(f'token reduction speed-up on this input: {res["speedup"]:.2f}x '
          f'({res["baseline_ms"]:.1f} ms without token stages, '
          f'{res["variant_ms"]:.1f} ms with; per-round '
          f'{res["round_min"]:.2f}-{res["round_max"]:.2f}x)', flush=True)
