from .clustered_map import ClusteredFeatureMap, conv_transpose2d_tokens
from .token_grid import RestoreState, TokenGrid
from .token_packing import PackedTokens, pack_tokens

__all__ = [
    'TokenGrid', 'RestoreState', 'PackedTokens', 'pack_tokens',
    'ClusteredFeatureMap', 'conv_transpose2d_tokens'
]
