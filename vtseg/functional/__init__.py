"""The methods' math as plain functions on tensors / arrays.

Registry modules in :mod:`vtseg.models` are thin wrappers around these.
The normalised cut (TokenCut) is in :mod:`.normalized_cut`; ``ncut`` is its
main function.
"""
from .connectivity import *  # noqa: F401,F403
from .dtop import *  # noqa: F401,F403
from .expedit import *  # noqa: F401,F403
from .local_global_merging import *  # noqa: F401,F403
from .normalized_cut import *  # noqa: F401,F403
from .saliency import *  # noqa: F401,F403
from .token_merging import *  # noqa: F401,F403
from .token_packing import *  # noqa: F401,F403
from .toco import *  # noqa: F401,F403
