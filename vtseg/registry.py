"""vtseg registries: children of mmseg's, so every mmseg component (and, via
the ``mmdet.`` prefix, every mmdet component) is usable from a vtseg config.

With ``default_scope = 'vtseg'`` a config's ``type='X'`` is looked up in vtseg
first, then mmseg, then mmengine; ``type='mmdet.X'`` reaches mmdet's registry.
"""
from mmengine.registry import Registry
from mmseg.registry import DATA_SAMPLERS as MMSEG_DATA_SAMPLERS
from mmseg.registry import DATASETS as MMSEG_DATASETS
from mmseg.registry import EVALUATOR as MMSEG_EVALUATOR
from mmseg.registry import HOOKS as MMSEG_HOOKS
from mmseg.registry import INFERENCERS as MMSEG_INFERENCERS
from mmseg.registry import LOG_PROCESSORS as MMSEG_LOG_PROCESSORS
from mmseg.registry import LOOPS as MMSEG_LOOPS
from mmseg.registry import METRICS as MMSEG_METRICS
from mmseg.registry import MODEL_WRAPPERS as MMSEG_MODEL_WRAPPERS
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMSEG_OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.registry import OPTIM_WRAPPERS as MMSEG_OPTIM_WRAPPERS
from mmseg.registry import OPTIMIZERS as MMSEG_OPTIMIZERS
from mmseg.registry import PARAM_SCHEDULERS as MMSEG_PARAM_SCHEDULERS
from mmseg.registry import RUNNER_CONSTRUCTORS as MMSEG_RUNNER_CONSTRUCTORS
from mmseg.registry import RUNNERS as MMSEG_RUNNERS
from mmseg.registry import TASK_UTILS as MMSEG_TASK_UTILS
from mmseg.registry import TRANSFORMS as MMSEG_TRANSFORMS
from mmseg.registry import VISBACKENDS as MMSEG_VISBACKENDS
from mmseg.registry import VISUALIZERS as MMSEG_VISUALIZERS
from mmseg.registry import \
    WEIGHT_INITIALIZERS as MMSEG_WEIGHT_INITIALIZERS


def _child(name, parent, location):
    return Registry(name, parent=parent, scope='vtseg', locations=[location])


RUNNERS = _child('runner', MMSEG_RUNNERS, 'vtseg.engine')
RUNNER_CONSTRUCTORS = _child('runner constructor', MMSEG_RUNNER_CONSTRUCTORS,
                             'vtseg.engine')
LOOPS = _child('loop', MMSEG_LOOPS, 'vtseg.engine')
HOOKS = _child('hook', MMSEG_HOOKS, 'vtseg.engine')
DATASETS = _child('dataset', MMSEG_DATASETS, 'vtseg.datasets')
DATA_SAMPLERS = _child('data sampler', MMSEG_DATA_SAMPLERS, 'vtseg.datasets')
TRANSFORMS = _child('transform', MMSEG_TRANSFORMS, 'vtseg.datasets')
MODELS = _child('model', MMSEG_MODELS, 'vtseg.models')
MODEL_WRAPPERS = _child('model_wrapper', MMSEG_MODEL_WRAPPERS, 'vtseg.models')
WEIGHT_INITIALIZERS = _child('weight initializer', MMSEG_WEIGHT_INITIALIZERS,
                             'vtseg.models')
OPTIMIZERS = _child('optimizer', MMSEG_OPTIMIZERS, 'vtseg.engine')
OPTIM_WRAPPERS = _child('optim_wrapper', MMSEG_OPTIM_WRAPPERS, 'vtseg.engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMSEG_OPTIM_WRAPPER_CONSTRUCTORS,
                                    'vtseg.engine')
PARAM_SCHEDULERS = _child('parameter scheduler', MMSEG_PARAM_SCHEDULERS,
                          'vtseg.engine')
METRICS = _child('metric', MMSEG_METRICS, 'vtseg.evaluation')
EVALUATOR = _child('evaluator', MMSEG_EVALUATOR, 'vtseg.evaluation')
TASK_UTILS = _child('task util', MMSEG_TASK_UTILS, 'vtseg.models')
VISUALIZERS = _child('visualizer', MMSEG_VISUALIZERS, 'vtseg.visualization')
VISBACKENDS = _child('vis_backend', MMSEG_VISBACKENDS, 'vtseg.visualization')
LOG_PROCESSORS = _child('log_processor', MMSEG_LOG_PROCESSORS, 'vtseg.engine')
INFERENCERS = _child('inferencer', MMSEG_INFERENCERS, 'vtseg.apis')

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS',
    'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS',
    'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR',
    'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS', 'INFERENCERS'
]
