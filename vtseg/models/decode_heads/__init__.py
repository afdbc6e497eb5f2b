from .upconv_head import UpConvHead

__all__ = ['UpConvHead']
