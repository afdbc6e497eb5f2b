from .upconv_head import UpConvHead

__all__ = ['UpConvHead']
from .connnet_head import *  # noqa: F401,F403
