from .tokencut import TokenCutDataPreProcessor, VideoDataPreProcessor

__all__ = ['TokenCutDataPreProcessor', 'VideoDataPreProcessor']
