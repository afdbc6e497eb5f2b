from .metrics import *  # noqa: F401,F403
from .discovery_det import *  # noqa: F401,F403
