"""Atomic file writes: write beside the target, then rename, so a killed job never leaves half a file."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_image(image, path: str | os.PathLike) -> Path:
    """Save a PIL image atomically; the format follows the suffix (.png, .jpg, ...)."""
    with atomic_path(path) as tmp:
        image.save(tmp)
    return Path(path)


def _sidecar(path: Path) -> Path:
    """Where atomic_dir parks the previous copy of `path` while the new one is renamed into place."""
    return path.with_name(f".{path.name}.old")


def recover_dir(path: str | os.PathLike) -> Path:
    """Put back the previous copy of `path` if a crash came between atomic_dir's two renames; returns `path`.

    Call it before reading a folder that atomic_dir writes: in that window `path` is gone and only its
    sidecar holds the last complete copy.
    """
    path = Path(path)
    old = _sidecar(path)
    if not path.exists() and old.is_dir():
        old.rename(path)
    return path


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` (any old copy goes only then)."""
    path = recover_dir(path)  # else the sidecar, perhaps the only copy left, would be deleted below
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result should read like any folder
    try:
        yield tmp
        old = _sidecar(path)
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
