"""Token stages: the modules that plug into the ViT's extension points."""
from .base import BaseTokenStage  # noqa: F401
from .algm import *  # noqa: F401,F403
from .expedit import *  # noqa: F401,F403
from .tome import *  # noqa: F401,F403
