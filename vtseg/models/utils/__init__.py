from .clustered_map import ClusteredFeatureMap, conv_transpose2d_tokens
from .token_grid import TokenGrid

__all__ = ['TokenGrid', 'ClusteredFeatureMap', 'conv_transpose2d_tokens']
