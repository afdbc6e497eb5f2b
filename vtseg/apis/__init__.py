"""User-facing entry points (rank 5, the top of the package layout,
docs/architecture.md): build a model from a config and run it
(:mod:`.inference`), demo input / output helpers (:mod:`.io`).
:func:`register_all_modules` is re-exported from :mod:`vtseg.setup_env`."""
from vtseg.setup_env import register_all_modules
from .inference import (build_test_pipeline, inference_model,
                        inference_video, init_model, is_clip_model,
                        prepare_inputs, untrained_keys)

__all__ = [
    'init_model', 'inference_model', 'inference_video', 'is_clip_model',
    'build_test_pipeline', 'prepare_inputs', 'register_all_modules',
    'untrained_keys'
]
