"""Errors that name the files of the sample that failed to load."""
import os.path as osp
from typing import List

__all__ = ['NamedSampleErrorsMixin', 'sample_files']

#: data-info keys holding one file path, and the word used for it
_FILE_KEYS = (('img_path', 'image'), ('seg_map_path', 'mask'))
_MAX_FRAMES = 3


def sample_files(info: dict) -> List[str]:
    """``['image a.jpg', 'mask a.png', ...]``: the files of a data info
    (video items: the sequence and its first frames)."""
    out = [f'{word} {info[k]}' for k, word in _FILE_KEYS if info.get(k)]
    frames = info.get('img_paths') or []
    if frames:
        more = (f' (and {len(frames) - _MAX_FRAMES} more)'
                if len(frames) > _MAX_FRAMES else '')
        out.append(f'sequence {info.get("seq_name", "?")} frames '
                   f'{", ".join(frames[:_MAX_FRAMES])}{more}')
    return out


def _empty_files(info: dict) -> List[str]:
    paths = [info[k] for k, _ in _FILE_KEYS if info.get(k)]
    paths += list(info.get('img_paths') or []) + list(
        info.get('ann_paths') or [])
    return [p for p in paths
            if isinstance(p, str) and osp.isfile(p) and osp.getsize(p) == 0]


class NamedSampleErrorsMixin:
    """``prepare_data`` that names the sample's files when its pipeline
    fails (a zero-byte, corrupt or truncated image, a bad mask), instead of
    a decoder assertion without a file name. Put it first in the bases:
    ``class CamVidDataset(NamedSampleErrorsMixin, BaseSegDataset)``.

    Raises:
        RuntimeError: ``'<dataset>: cannot load sample <idx> (image ...,
            mask ...): <what failed>'``; an empty file is said so.
    """

    def describe(self) -> str:
        """The dataset as named in error messages."""
        return (f'{type(self).__name__}(data_root='
                f'{getattr(self, "data_root", None)!r})')

    def prepare_data(self, idx: int):
        """Run the pipeline on sample ``idx``; a failure names its files."""
        try:
            return super().prepare_data(idx)
        except Exception as err:
            info = self.get_data_info(idx)
            files = ', '.join(sample_files(info)) or 'no file path'
            empty = _empty_files(info)
            why = (f'{", ".join(empty)}: empty file (0 bytes); '
                   if empty else '')
            raise RuntimeError(f'{self.describe()}: cannot load sample {idx} '
                               f'({files}): {why}{type(err).__name__}: '
                               f'{str(err).strip()}') from err
