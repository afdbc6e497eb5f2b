from .instance_ap_metric import InstanceMaskAPMetric
from .saliency_metric import SaliencyMetric

__all__ = ['InstanceMaskAPMetric', 'SaliencyMetric']
