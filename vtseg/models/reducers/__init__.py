"""Token stages: the modules that plug into the ViT's extension points."""
from .base import BaseTokenStage

__all__ = ['BaseTokenStage']
