"""Loading transforms for vtseg datasets."""
from typing import Optional

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmseg.datasets.transforms import LoadAnnotations

from vtseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadBinaryMask(LoadAnnotations):
    """Load a binary (saliency / object) mask as ``gt_seg_map`` in {0, 1}.

    The mask file is decoded unchanged (1-bit, 8-bit, 16-bit, palette or RGB
    PNGs) and binarised: foreground (1) where the value is > ``threshold``
    (any colour channel for a colour mask; an alpha channel is dropped),
    background (0) elsewhere. The default
    ``threshold=0`` makes every nonzero value foreground, which is right for
    1-bit and 0/255 masks; the salient-object protocols binarise 8-bit
    masks at 0.5, i.e. ``threshold=127`` (values >= 128 are foreground),
    which only matters for masks with anti-aliased grey edges.

    Unlike mmseg's ``LoadAnnotations``, 255 is *not* an ignore label here
    (0/255 masks are common); set ``ignore_value`` to map one raw value to
    the ignore label 255 instead (e.g. a void border drawn with 255 in
    a VOC-style mask). The dataset's ``reduce_zero_label`` / ``label_map``
    do not apply to binary masks.

    Required keys: ``seg_map_path``. Added keys: ``gt_seg_map`` (uint8
    (H, W) in {0, 1} or 255), ``seg_fields``.

    Args:
        threshold: foreground where raw value > threshold.
        ignore_value: raw value mapped to 255 (ignored) before binarising;
            None (default) for none.
        imdecode_backend: :func:`mmcv.imfrombytes` backend ('pillow' keeps
            1-bit and palette PNGs as raw values).
        backend_args: mmengine file backend arguments.
    """

    def __init__(self,
                 threshold: float = 0,
                 ignore_value: Optional[int] = None,
                 imdecode_backend: str = 'pillow',
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(
            backend_args=backend_args, imdecode_backend=imdecode_backend)
        self.threshold = threshold
        self.ignore_value = ignore_value

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
        if mask.ndim == 3:
            # Colour masks: any colour channel counts; an alpha channel
            # (grey+alpha or RGBA) is dropped, it is usually opaque.
            channels = mask.shape[2]
            colour = {2: 1, 4: 3}.get(channels, channels)
            mask = mask[:, :, :colour].max(axis=2)
        binary = (mask > self.threshold).astype(np.uint8)
        if self.ignore_value is not None:
            binary[mask == self.ignore_value] = 255
        results['gt_seg_map'] = binary
        results.setdefault('seg_fields', []).append('gt_seg_map')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(threshold={self.threshold}, '
                f'ignore_value={self.ignore_value}, '
                f"imdecode_backend='{self.imdecode_backend}', "
                f'backend_args={self.backend_args})')
