"""This folder's pipeline class, for diffusers.DiffusionPipeline.from_pretrained(folder, custom_pipeline="pipeline",
trust_remote_code=True). The code is the installed imagen_demo package's (pip install imagen-demo)."""

from imagen_demo.core.pipeline import ImagenPipeline  # noqa: F401
