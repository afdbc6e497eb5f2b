"""``HourglassViT``: the Expedit reference's backbone name, as a thin wrapper.

Expedit's repositories ship an ``HourglassViT`` backbone (a copy of the ViT
with clustering and reconstruction built in). vtseg keeps one ViT: this class
only turns the reference-style arguments into the two token stages
(:func:`vtseg.models.reducers.expedit_token_stages`) and passes them to
:class:`~vtseg.models.backbones.ViT`. Parameters and state-dict keys are the
ViT's, so plain ViT checkpoints load unchanged, and configs written with
``type='ViT', token_stages=[...]`` build the same network.
"""
import inspect
from typing import Optional, Sequence, Union

from vtseg.registry import MODELS

from ..reducers.expedit import GridSpec, expedit_token_stages
from .vit import ViT

_VIT_DEPTH = inspect.signature(ViT).parameters['depth'].default


@MODELS.register_module()
class HourglassViT(ViT):
    """ViT with Expedit token clustering after ``cluster_layer`` and
    reconstruction after ``reconstruct_layer`` (None: at the outputs).

    Args:
        cluster_layer: cluster after this block (0-based; negative counts
            from the end). The reference's ``clustering_location``. A list
            of increasing blocks clusters again after each (nested, a vtseg
            extension).
        grid: cluster grid, ``(h, w)``, a perfect-square int (the reference's
            ``num_cluster``) or a float scale of the token grid; a list of
            those with a list of cluster layers.
        reconstruct_layer: rebuild the full token set after this block;
            None rebuilds every output level (``restore='backbone'``).
        k, cluster_temperature, reconstruct_temperature, window_size,
        n_iters, restore, faithful: see :func:`expedit_token_stages`
            (paper defaults: 20, 0.02, 0.02, 5, 5, ``'backbone'``, False;
            ``restore='head'`` rebuilds inside the decode head).
        cluster_kwargs: further :class:`TokenClustering` options
            (``distance``, ``temperature_mode``).
        **kwargs: :class:`~vtseg.models.backbones.ViT` arguments
            (``token_stages`` is built here and may not be given).

    Shapes: as :class:`ViT`; with ``restore='none'`` the output levels after
    the clustering are (B, C, h, w) on the cluster grid.

    Bad settings (cluster layer at or after the reconstruct layer, a layer
    outside ``depth``, ``k`` above the clusters of a fixed grid) fail at
    build time.
    """

    def __init__(self,
                 cluster_layer: Union[int, Sequence[int]],
                 grid: Union[GridSpec, Sequence[GridSpec]],
                 reconstruct_layer: Optional[int] = None,
                 k: int = 20,
                 cluster_temperature: float = 0.02,
                 reconstruct_temperature: float = 0.02,
                 window_size: int = 5,
                 n_iters: int = 5,
                 restore: str = 'backbone',
                 faithful: bool = False,
                 cluster_kwargs: Optional[dict] = None,
                 **kwargs):
        if 'token_stages' in kwargs:
            raise ValueError(
                'HourglassViT builds its own token_stages from cluster_layer '
                "/ grid / reconstruct_layer; use type='ViT' to give "
                'token_stages directly')
        stages = expedit_token_stages(
            cluster_layer, grid, reconstruct_layer=reconstruct_layer, k=k,
            cluster_temperature=cluster_temperature,
            reconstruct_temperature=reconstruct_temperature,
            window_size=window_size, n_iters=n_iters, restore=restore,
            faithful=faithful, depth=kwargs.get('depth', _VIT_DEPTH),
            **(cluster_kwargs or {}))
        super().__init__(token_stages=stages, **kwargs)
