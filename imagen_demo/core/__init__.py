"""The Imagen model: frozen text encoder, Efficient U-Nets, diffusers schedulers and the cascade pipeline.

Generic Imagen: nothing here knows the shapes world, the demo or the benchmark, which all build on it.
"""
