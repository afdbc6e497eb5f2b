"""Optimizer wrapper constructors."""
from .layer_decay_constructor import (ViTLayerDecayOptimizerConstructor,
                                      vit_layer_id)

__all__ = ['ViTLayerDecayOptimizerConstructor', 'vit_layer_id']
