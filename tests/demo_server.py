"""A demo server on the tiny test model, on a free local port, for the demo's client and browser tests."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path

from imagen_demo.demo import build_demo
from imagen_demo.registry import ModelRegistry


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_tiny(pipe_dir: Path, compare_models: str | None = None, **options):
    """Yield (url, registry) while the demo runs on the saved tiny pipeline in `pipe_dir`."""
    registry = ModelRegistry("cpu")
    demo = build_demo(str(pipe_dir), registry=registry, compare_models=compare_models, **options)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", registry
    finally:
        demo.close()
