"""The DINO projection head that ToCo's class token contrast uses
(docs/toco.md)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor

from vtseg.registry import MODELS

__all__ = ['DINOProjHead']


@MODELS.register_module()
class DINOProjHead(nn.Module):
    """MLP ``in_dims -> hidden_dims (GELU) -> ... -> bottleneck_dims``, L2
    normalisation, then a weight-normalised bias-free linear layer
    ``bottleneck_dims -> out_dims`` whose norm is fixed at 1 (every output
    unit's weight row has unit length; DINO's ``norm_last_layer``).

    Args:
        in_dims: token width (768 ViT-B, 384 ViT-S).
        out_dims: output width (1024 in ToCo).
        hidden_dims / bottleneck_dims / num_layers: 2048 / 256 / 3.

    Shapes: (N, in_dims) -> (N, out_dims).
    """

    def __init__(self, in_dims: int, out_dims: int = 1024,
                 hidden_dims: int = 2048, bottleneck_dims: int = 256,
                 num_layers: int = 3):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}')
        if num_layers == 1:
            self.mlp = nn.Linear(in_dims, bottleneck_dims)
        else:
            layers = [nn.Linear(in_dims, hidden_dims), nn.GELU()]
            for _ in range(num_layers - 2):
                layers += [nn.Linear(hidden_dims, hidden_dims), nn.GELU()]
            layers.append(nn.Linear(hidden_dims, bottleneck_dims))
            self.mlp = nn.Sequential(*layers)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                nn.init.constant_(m.bias, 0)
        # direction of the weight-normalised last layer (norm fixed at 1)
        self.last_layer_v = nn.Parameter(
            torch.empty(out_dims, bottleneck_dims))
        nn.init.kaiming_uniform_(self.last_layer_v, a=5 ** 0.5)

    def forward(self, x: Tensor) -> Tensor:
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        return F.linear(x, F.normalize(self.last_layer_v, dim=1))
