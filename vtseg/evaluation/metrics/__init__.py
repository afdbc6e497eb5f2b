from .saliency_metric import SaliencyMetric

__all__ = ['SaliencyMetric']
