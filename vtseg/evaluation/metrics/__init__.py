from .saliency_metric import SaliencyMetric

__all__ = ['SaliencyMetric']
from .corloc_metric import *  # noqa: F401,F403
from .video_iou_metric import *  # noqa: F401,F403
