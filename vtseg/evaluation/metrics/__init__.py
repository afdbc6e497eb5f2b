from .corloc_metric import CorLocMetric
from .instance_ap_metric import InstanceMaskAPMetric
from .saliency_metric import SaliencyMetric
from .token_stats_metric import TokenStatsMetric
from .video_iou_metric import VideoIoUMetric, frame_iou

__all__ = [
    'CorLocMetric', 'InstanceMaskAPMetric', 'SaliencyMetric',
    'VideoIoUMetric', 'frame_iou', 'TokenStatsMetric'
]
