from .camvid import CamVidDataset, SmokeSegDataset  # noqa: F401
from .object_discovery import *  # noqa: F401,F403
from .pennfudan import PennFudanDataset, pennfudan_split  # noqa: F401
from .pennfudan_det import *  # noqa: F401,F403
from .saliency import *  # noqa: F401,F403
from .transforms import *  # noqa: F401,F403
from .image_labels import *  # noqa: F401,F403
