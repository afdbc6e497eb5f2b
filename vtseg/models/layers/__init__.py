"""Layers of the vtseg ViT (attention, blocks, patch embedding)."""
from .patch_embed import PatchEmbed, resize_pos_embed
from .transformer import (Attention, Block, LayerScale, Mlp, attention_mask,
                          init_transformer_weights)
from .windowed_attention import (WindowedAttention, decomposed_rel_pos_bias,
                                 rel_pos_lookup, resize_rel_pos,
                                 window_partition, window_unpartition,
                                 window_valid_mask)

__all__ = [
    'PatchEmbed', 'resize_pos_embed', 'Attention', 'Block', 'LayerScale',
    'Mlp', 'attention_mask', 'init_transformer_weights', 'WindowedAttention',
    'window_partition', 'window_unpartition', 'window_valid_mask',
    'resize_rel_pos', 'rel_pos_lookup', 'decomposed_rel_pos_bias'
]
from .dino_proj_head import DINOProjHead  # noqa: E402

__all__ += ['DINOProjHead']
from .par import PAR  # noqa: E402

__all__ += ['PAR']
