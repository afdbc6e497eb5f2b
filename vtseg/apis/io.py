"""Input / output helpers for the demos: image lists, frame sources and
prediction export."""
import glob
import os
import os.path as osp
from typing import Iterator, List, Tuple

import cv2
import numpy as np

from vtseg.analysis.benchmark import has_token_stages, speedup_vs_plain
from .inference import prepare_inputs

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(spec: str) -> List[str]:
    """Image files named by a file, a folder (sorted, non-recursive) or a
    glob pattern. Raises FileNotFoundError when nothing matches."""
    if osp.isdir(spec):
        files = sorted(
            osp.join(spec, f) for f in os.listdir(spec)
            if f.lower().endswith(IMAGE_EXTS))
    elif any(c in spec for c in '*?['):
        files = sorted(f for f in glob.glob(spec, recursive=True)
                       if osp.isfile(f))
    elif osp.isfile(spec):
        files = [spec]
    else:
        raise FileNotFoundError(f'no image, folder or glob match at {spec}')
    if not files:
        raise FileNotFoundError(f'no images found in {spec}')
    return files


class FrameSource:
    """Frames of a video file (anything OpenCV reads) or a folder of frame
    images, as BGR uint8 arrays.

    Attributes:
        fps: frames per second (the video's, or ``default_fps`` for folders).
        num_frames: frame count (may be approximate for some codecs).
    """

    def __init__(self, spec: str, default_fps: float = 24.0):
        self.spec = spec
        self._files = None
        self._cap = None
        if osp.isdir(spec):
            self._files = list_images(spec)
            self.fps = default_fps
            self.num_frames = len(self._files)
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
            for i, f in enumerate(self._files):
                img = cv2.imread(f, cv2.IMREAD_COLOR)
                if img is None:
                    raise ValueError(f'cannot decode frame {f}')
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


def check_outputs_free(paths: List[str], force: bool) -> None:
    """Refuse to overwrite existing outputs unless ``force``."""
    if force:
        return
    existing = [p for p in paths if osp.exists(p)]
    if existing:
        more = f' (and {len(existing) - 3} more)' if len(existing) > 3 else ''
        raise FileExistsError(
            f'output exists: {", ".join(existing[:3])}{more}; choose another '
            'output location or pass --force to overwrite')


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
