"""Loading transforms for vtseg datasets, and the one rule that turns a
mask file into a binary mask (:func:`binarize_mask`)."""
import logging
from typing import Optional, Tuple

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmengine.logging import print_log
from mmseg.datasets.transforms import LoadAnnotations

from vtseg.registry import TRANSFORMS

__all__ = [
    'LoadBinaryMask', 'binarize_mask', 'mask_half_range',
    'reduce_mask_channels'
]


def mask_half_range(mask: np.ndarray) -> float:
    """Half of the value range of a mask's format: 127 for 8-bit (and
    integer masks with values <= 255), 32767 for 16-bit and wider integers,
    0.5 for floats in [0, 1]. Foreground is ``value > half``."""
    if mask.dtype == np.bool_:
        return 0
    if np.issubdtype(mask.dtype, np.floating):
        return 0.5 if mask.size == 0 or float(mask.max()) <= 1 else 127
    if mask.dtype == np.uint8 or mask.size == 0 or int(mask.max()) <= 255:
        return 127
    return 32767


def reduce_mask_channels(mask: np.ndarray) -> np.ndarray:
    """(H, W[, C]) -> (H, W): a colour mask becomes its brightest colour
    channel; an alpha channel (grey+alpha, RGBA; usually opaque) is
    dropped."""
    if mask.ndim != 3:
        return mask
    colour = {2: 1, 4: 3}.get(mask.shape[2], mask.shape[2])
    return mask[:, :, :colour].max(axis=2)


def binarize_mask(mask: np.ndarray, threshold: Optional[float] = None,
                  ignore_value: Optional[int] = None
                  ) -> Tuple[np.ndarray, Optional[str]]:
    """Foreground (True) of a decoded mask: vtseg's binarisation rule.

    With ``threshold=None`` (the rule, docs/reliability.md#masks):

    * a binary mask (values in {0, v}: 1-bit, 0/1, 0/255, 0/65535) is
      foreground where nonzero;
    * any other mask (soft / anti-aliased saliency maps) is foreground above
      half of its format's range (``> 127`` for 8-bit, i.e. the 0.5
      threshold of the salient-object protocols; :func:`mask_half_range`),
      and the second return value describes it for a warning.

    An explicit ``threshold`` is used as it is (``value > threshold``), with
    no warning: ``threshold=0`` for label or instance-id masks (Penn-Fudan
    ``PedMasks``: ids 1..k are all foreground).

    Args:
        mask: (H, W) decoded mask (colour masks reduced by the caller).
        threshold: None for the rule, else foreground = value > threshold.
        ignore_value: a raw value left out when deciding whether the mask
            is binary (the caller marks it as ignored).

    Returns:
        ``(foreground, note)``: (H, W) bool and None, or a sentence saying
        that the mask was not binary and how it was binarised.
    """
    mask = np.asarray(mask)
    if threshold is not None:
        return mask > threshold, None
    if mask.dtype == np.bool_:
        return mask, None
    values = np.unique(mask)
    if ignore_value is not None:
        values = values[values != ignore_value]
    if len(values) <= 2 and (len(values) < 2 or values[0] == 0):
        return mask != 0, None
    half = mask_half_range(mask)
    between = float(np.isin(mask, values[1:-1]).mean())
    note = (f'not binary ({len(values)} values in [{values[0]}, '
            f'{values[-1]}], {100 * between:.1f}% of the pixels in between): '
            f'binarised at > {half:g} (half of the {mask.dtype} range); '
            'set threshold=0 for label / instance-id masks')
    return mask > half, note


@TRANSFORMS.register_module()
class LoadBinaryMask(LoadAnnotations):
    """Load a binary (saliency / object) mask as ``gt_seg_map`` in {0, 1}.

    The mask file is decoded unchanged (1-bit, 8-bit, 16-bit, palette or RGB
    PNGs; a colour mask is reduced to its brightest colour channel, an alpha
    channel is dropped) and binarised by :func:`binarize_mask`: with the
    default ``threshold=None`` a binary mask (two values, 0 and one other)
    is foreground where nonzero, and any other mask above half of its
    format's range (``> 127`` for 8-bit, the 0.5 threshold of the
    salient-object protocols) with a warning that names the file (the first
    three such files of a run). An explicit ``threshold`` is applied as it
    is (``value > threshold``), e.g. ``threshold=0`` for instance-id masks.

    The mask must have the size of its image (``ori_shape``, as decoded,
    EXIF orientation applied): a mask of another size or orientation is an
    error naming both files (it would otherwise be stretched onto the
    prediction without a word).

    Unlike mmseg's ``LoadAnnotations``, 255 is *not* an ignore label here
    (0/255 masks are common); set ``ignore_value`` to map one raw value to
    the ignore label 255 instead (e.g. a void border drawn with 255 in
    a VOC-style mask). The dataset's ``reduce_zero_label`` / ``label_map``
    do not apply to binary masks.

    Required keys: ``seg_map_path``. Added keys: ``gt_seg_map`` (uint8
    (H, W) in {0, 1} or 255), ``seg_fields``.

    Args:
        threshold: None (default) for vtseg's rule, else foreground where
            raw value > threshold.
        ignore_value: raw value mapped to 255 (ignored) before binarising;
            None (default) for none.
        imdecode_backend: :func:`mmcv.imfrombytes` backend ('pillow' keeps
            1-bit and palette PNGs as raw values).
        backend_args: mmengine file backend arguments.
    """

    #: non-binary masks reported by name before going quiet
    MAX_REPORTED = 3

    def __init__(self,
                 threshold: Optional[float] = None,
                 ignore_value: Optional[int] = None,
                 imdecode_backend: str = 'pillow',
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(
            backend_args=backend_args, imdecode_backend=imdecode_backend)
        self.threshold = threshold
        self.ignore_value = ignore_value
        self._reported = 0

    def _load_seg_map(self, results: dict) -> None:
        path = results['seg_map_path']
        if results.get('reduce_zero_label', False):
            raise ValueError(f'LoadBinaryMask: reduce_zero_label=True makes '
                             f'no sense for the binary mask {path}; build '
                             'the dataset with reduce_zero_label=False')
        try:
            mask_bytes = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f'LoadBinaryMask: mask file {path} not found') from err
        try:
            mask = mmcv.imfrombytes(
                mask_bytes, flag='unchanged', backend=self.imdecode_backend)
        except Exception as err:  # decoders raise many different types
            raise ValueError(f'LoadBinaryMask: cannot decode mask file {path}'
                             f' ({type(err).__name__}: {err})') from err
        if mask is None or mask.ndim not in (2, 3) or mask.size == 0:
            raise ValueError(f'LoadBinaryMask: cannot decode mask file {path}'
                             ' as a 2-D image')
        mask = np.asarray(mask)
        mask = reduce_mask_channels(mask)
        ori = results.get('ori_shape')
        if ori is not None and tuple(mask.shape[:2]) != tuple(ori[:2]):
            turned = tuple(mask.shape[:2]) == tuple(ori[:2])[::-1]
            raise ValueError(
                f'LoadBinaryMask: mask {path} is {mask.shape[0]}x'
                f'{mask.shape[1]} (HxW) but its image '
                f'{results.get("img_path")} is {ori[0]}x{ori[1]}' +
                (' (rotated by 90 degrees: the image probably carries an '
                 'EXIF orientation tag, which the image decoder applies)'
                 if turned else '') +
                '; a mask must have its image\'s size and orientation')
        fg, note = binarize_mask(mask, self.threshold, self.ignore_value)
        if note is not None and self._reported < self.MAX_REPORTED:
            self._reported += 1
            more = ('; further non-binary masks are not reported'
                    if self._reported == self.MAX_REPORTED else '')
            print_log(f'LoadBinaryMask: mask {path} is {note}{more}',
                      logger='current', level=logging.WARNING)
        binary = fg.astype(np.uint8)
        if self.ignore_value is not None:
            binary[mask == self.ignore_value] = 255
        results['gt_seg_map'] = binary
        results.setdefault('seg_fields', []).append('gt_seg_map')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(threshold={self.threshold}, '
                f'ignore_value={self.ignore_value}, '
                f"imdecode_backend='{self.imdecode_backend}', "
                f'backend_args={self.backend_args})')
