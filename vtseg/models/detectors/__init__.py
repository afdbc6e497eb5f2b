from .mask_flip_rcnn import MaskFlipRCNN, mirror_images

__all__ = ['MaskFlipRCNN', 'mirror_images']
