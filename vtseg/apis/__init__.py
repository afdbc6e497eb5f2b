from .inference import (build_test_pipeline, inference_model, init_model,
                        prepare_inputs)

__all__ = [
    'init_model', 'inference_model', 'build_test_pipeline', 'prepare_inputs'
]
