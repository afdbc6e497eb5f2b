from .discovery import LoadVideoFrames, PackVideoInputs, ResizeToMultiple
from .loading import LoadBinaryMask

__all__ = [
    'LoadBinaryMask', 'ResizeToMultiple', 'LoadVideoFrames', 'PackVideoInputs'
]
