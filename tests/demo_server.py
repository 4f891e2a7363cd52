"""A demo server on the tiny test model, for the demo's client and browser tests.

Gradio picks the port: it tries 7860 and up, moving on when one is taken by the time its server binds,
and returns only once the server answers, so there is no port race to lose and nothing to wait for.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from imagen_demo.demo import build_demo
from imagen_demo.registry import ModelRegistry


@contextmanager
def serve_tiny(pipe_dir: Path, compare_models: str | None = None, **options):
    """Yield (url, registry) while the demo runs on the saved tiny pipeline in `pipe_dir`."""
    registry = ModelRegistry("cpu")
    demo = build_demo(str(pipe_dir), registry=registry, compare_models=compare_models, **options)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url, registry
    finally:
        demo.close()
