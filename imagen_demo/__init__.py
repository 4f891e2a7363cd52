"""imagen_demo: an open implementation of Imagen (Saharia et al. 2022) with a demo and a benchmark.

The exports below load on first use (`from imagen_demo import ImagenPipeline` works as usual), so that
light entry points such as the CLI's --help do not pay for importing torch and diffusers.
"""

from .utils.lazy import lazy_exports

__version__ = "0.1.0"
_EXPORTS = {
    "ImagenPipeline": ".core.pipeline", "ImagenPipelineOutput": ".core.pipeline", "Stage": ".core.sampling",
    "SamplingDefaults": ".core.defaults", "ProgressEvent": ".progress",
    "PRESETS": ".core.presets", "unet_from_preset": ".core.presets",
    "DEFAULT_TEXT_ENCODER": ".core.text_encoder", "TextEmbeddings": ".core.text_encoder", "TextEncoder": ".core.text_encoder",
    "EfficientUNet": ".core.unet",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
