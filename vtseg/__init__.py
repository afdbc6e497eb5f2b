"""vtseg: dense prediction with plain Vision Transformers."""
from .version import __version__
from . import compat

# mmcv-lite support and weights-only checkpoint loading must be in place
# before mmseg / mmdet import mmcv.ops or load any checkpoint.
compat.apply()

__all__ = ['__version__']
