from .connnet import *  # noqa: F401,F403
