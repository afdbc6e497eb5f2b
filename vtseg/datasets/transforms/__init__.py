from .loading import LoadBinaryMask

__all__ = ['LoadBinaryMask']
