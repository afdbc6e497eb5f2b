from .connectivity_loss import *  # noqa: F401,F403
