"""imagen_demo: an open implementation of Imagen (Saharia et al. 2022) with a demo and a benchmark."""

from .pipeline import ImagenPipeline, ImagenPipelineOutput, ProgressEvent, Stage
from .presets import PRESETS, unet_from_preset
from .text_encoder import DEFAULT_TEXT_ENCODER, TextEmbeddings, TextEncoder
from .unet import EfficientUNet

__version__ = "0.1.0"
__all__ = [
    "DEFAULT_TEXT_ENCODER", "EfficientUNet", "ImagenPipeline", "ImagenPipelineOutput", "PRESETS",
    "ProgressEvent", "Stage", "TextEmbeddings", "TextEncoder", "unet_from_preset",
]
