"""Reading image files for the demos and :mod:`vtseg.apis`, with one rule
for bad files (docs/reliability.md#images): a missing, empty, corrupt,
truncated or non-image file is an error that names it, never an image with a
grey fill."""
import os.path as osp

import cv2
import numpy as np

__all__ = ['ImageReadError', 'read_image']


class ImageReadError(ValueError):
    """An image file exists but cannot be decoded completely."""


def read_image(path: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode an image file with OpenCV (EXIF orientation applied, as by
    ``cv2.imread`` and mmcv's ``LoadImageFromFile``).

    The file is decoded from its bytes with ``cv2.imdecode``, which refuses
    a truncated JPEG or PNG (``cv2.imread`` returns it with the missing
    part filled with grey), so the demos and the API reject exactly what
    ``tools/test.py`` rejects.

    Args:
        path: image file.
        flags: OpenCV ``IMREAD_*`` flags (default: 8-bit BGR).

    Returns:
        (H, W, 3) uint8 BGR array for the default flags.

    Raises:
        FileNotFoundError: no file at ``path``.
        ImageReadError: empty file, or not decodable (not an image format
            OpenCV reads, corrupt, or truncated); the message names the file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'image not found: {path}')
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(f'cannot read image {path}: empty file '
                             '(0 bytes)')
    img = cv2.imdecode(data, flags)
    if img is None:
        raise ImageReadError(f'cannot decode image {path}: not an image '
                             'format OpenCV reads, corrupt, or truncated')
    return img
