from .connnet_head import *  # noqa: F401,F403
from .segmenter_mask_head import *  # noqa: F401,F403
from .stage_heads import *  # noqa: F401,F403
from .upconv_head import UpConvHead  # noqa: F401
from .largefov_head import LargeFOVHead  # noqa: F401
