from .hourglass_vit import HourglassViT
from .vit import ViT

__all__ = ['ViT', 'HourglassViT']
