"""Pictures handed to Gradio as PNG files of the demo's own, never as PIL images.

Gradio saves a returned PIL image under a name made from its bytes and writes that file in place, even when it is
there already. Two requests that draw the same picture (the same prompt and seed: an example clicked twice, a
crowd on the default seed) then rewrite a file while it is being sent, and the server fails the download
("Exception in ASGI application ... Too much data for declared Content-Length"). A file path, instead, Gradio
copies into its cache under a temporary name and renames into place, and never rewrites.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from contextlib import contextmanager
from typing import Callable, Iterator

import PIL.Image


@contextmanager
def picture_files() -> Iterator[Callable[[PIL.Image.Image], str]]:
    """Yield ``save(image) -> path``: each picture a new PNG in a folder that lasts as long as the ``with`` block
    (one request: Gradio has copied every file it was given before the request's generator finishes)."""
    with tempfile.TemporaryDirectory(prefix="imagen-demo-") as folder:
        numbers = itertools.count()

        def save(image: PIL.Image.Image) -> str:
            path = os.path.join(folder, f"{next(numbers)}.png")
            image.save(path)
            return path

        yield save
