from .connnet import *  # noqa: F401,F403
from .dtop import *  # noqa: F401,F403
from .tokencut import *  # noqa: F401,F403
from .toco import *  # noqa: F401,F403
