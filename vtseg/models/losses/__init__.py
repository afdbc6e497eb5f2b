from .connectivity_loss import *  # noqa: F401,F403
from .toco_losses import *  # noqa: F401,F403
