"""The methods' math as plain functions on tensors / arrays.

Registry modules in :mod:`vtseg.models` are thin wrappers around these.
Note: ``vtseg.functional.ncut`` is the function; import the module's other
helpers from :mod:`vtseg.functional.ncut` explicitly.
"""
from .connectivity import *  # noqa: F401,F403
from .expedit import *  # noqa: F401,F403
from .ncut import *  # noqa: F401,F403
from .saliency import *  # noqa: F401,F403
