"""Measurement tools (rank 4 of the package layout, docs/architecture.md):
FLOP counting (:mod:`.flops`), latency benchmarks and the model / data
helpers they share (:mod:`.benchmark`), and the time share of token stages
(:mod:`.stage_time`), and the CAM / pseudo-label / segmentation scoring
of weakly supervised models (:mod:`.toco_eval`). Used by ``tools/analysis_tools`` and the demos."""
from .benchmark import (LatencyStats, benchmark_models, build_model,
                        compare_speed, environment_info, format_benchmark,
                        has_token_stages, num_threads, plain_model_like,
                        real_image_batches, speedup_vs_plain, speedups,
                        time_function)
from .det_eval import (build_detector, coco_discovery_samples,
                       compare_det_variants, detector_batches,
                       evaluate_detector, set_stages,
                       time_detector_variants)
from .flops import REDUCER_COUNT_MODES, FlopCount, count_flops
from .stage_time import stage_time_fraction
from .toco_eval import (Confusion, check_masks, dense_crf, evaluate_wsss,
                        layer_token_similarity)

__all__ = [
    'LatencyStats', 'benchmark_models', 'build_model', 'compare_speed',
    'environment_info', 'format_benchmark', 'has_token_stages',
    'num_threads', 'plain_model_like', 'real_image_batches',
    'speedup_vs_plain', 'speedups', 'time_function', 'REDUCER_COUNT_MODES',
    'FlopCount', 'count_flops', 'stage_time_fraction', 'Confusion',
    'check_masks', 'dense_crf', 'evaluate_wsss', 'layer_token_similarity',
    'build_detector', 'coco_discovery_samples', 'compare_det_variants',
    'detector_batches', 'evaluate_detector', 'set_stages',
    'time_detector_variants'
]
