from .inference import (build_test_pipeline, inference_model,
                        inference_video, init_model, is_clip_model,
                        prepare_inputs)

__all__ = [
    'init_model', 'inference_model', 'inference_video', 'is_clip_model',
    'build_test_pipeline', 'prepare_inputs'
]
