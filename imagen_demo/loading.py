"""Offline-first loading policy, and the two errors a user sees when weights are missing or broken.

These machines often reach package registries but no model hub, so the hub is consulted only when the
user opts in with ``HF_HUB_OFFLINE=0``; everything else resolves from local folders and the Hugging Face
cache. Whatever goes wrong deep inside transformers/diffusers/safetensors surfaces as one sentence that
names what is missing and how to provide it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_HOW_TO_PROVIDE = (
    "Provide it as a local folder path, put it in the Hugging Face cache (HF_HOME), "
    "or allow downloads with HF_HUB_OFFLINE=0 on a machine with network access."
)


class WeightsNotFoundError(FileNotFoundError):
    """Weights (or a config) named by the user are not on this machine and may not be downloaded."""


class CorruptWeightsError(OSError):
    """A weights file exists but cannot be read (truncated download, wrong format, edited by hand)."""


def hub_offline() -> bool:
    """True unless the user explicitly allowed the hub with HF_HUB_OFFLINE=0 (or false/no)."""
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() not in {"0", "false", "no"}


def missing(what: str, name: str | os.PathLike) -> WeightsNotFoundError:
    return WeightsNotFoundError(f"{what} '{name}' is not available on this machine. {_HOW_TO_PROVIDE}")


def resolve_folder(name_or_path: str | os.PathLike, what: str) -> Path:
    """A local folder as is, else a hub id resolved through the cache (or the hub when allowed)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists() or str(name_or_path).startswith((".", "/", "~")) or str(name_or_path).count("/") != 1:
        raise missing(what, name_or_path)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(name_or_path), local_files_only=hub_offline()))
    except Exception as err:  # the hub client raises a zoo of types; the user needs one sentence
        raise missing(what, name_or_path) from err


@contextmanager
def explained_load_errors(what: str, name: str | os.PathLike) -> Iterator[None]:
    """Turn library errors raised while loading `name` into WeightsNotFoundError / CorruptWeightsError."""
    try:
        yield
    except (WeightsNotFoundError, CorruptWeightsError):
        raise
    except (FileNotFoundError, EnvironmentError) as err:
        text = str(err).lower()
        if any(word in text for word in ("header", "corrupt", "deserializ", "invalid", "incomplete", "truncat")):
            raise CorruptWeightsError(f"{what} '{name}' has a corrupt or truncated weights file: {err}") from err
        raise missing(what, name) from err
    except Exception as err:
        if type(err).__name__ in {"SafetensorError", "HeaderTooLarge", "HeaderTooSmall"} or "safetensor" in str(err).lower():
            raise CorruptWeightsError(f"{what} '{name}' has a corrupt or truncated weights file: {err}") from err
        raise
