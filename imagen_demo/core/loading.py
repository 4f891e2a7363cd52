"""Offline-first loading policy, and the two errors a user sees when weights are missing or broken.

These machines often reach package registries but no model hub, so the hub is consulted only when the
user opts in with ``HF_HUB_OFFLINE=0``; everything else resolves from local folders and the Hugging Face
cache. Whatever goes wrong deep inside transformers/diffusers/safetensors surfaces as one sentence that
names what is missing and how to provide it.
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors import SafetensorError, safe_open

from ..utils.atomic import recover_dir

_HOW_TO_PROVIDE = (
    "Provide it as a local folder path, put it in the Hugging Face cache (HF_HOME), "
    "or allow downloads with HF_HUB_OFFLINE=0 on a machine with network access."
)


# Pipelines that ship inside the package, by name; "default" is what the CLI and the demo use.
SHIPPED_MODELS: dict[str, Path] = {"default": Path(__file__).parents[1] / "weights" / "shapes-default"}
DEFAULT_MODEL = "default"


class WeightsNotFoundError(FileNotFoundError):
    """Weights (or a config) named by the user are not on this machine and may not be downloaded."""


class CorruptWeightsError(OSError):
    """A weights file exists but cannot be read (truncated download, wrong format, edited by hand)."""


def hub_offline() -> bool:
    """True unless the user explicitly allowed the hub with HF_HUB_OFFLINE=0 (or false/no)."""
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() not in {"0", "false", "no"}


def missing(what: str, name: str | os.PathLike) -> WeightsNotFoundError:
    return WeightsNotFoundError(f"{what} '{name}' is not available on this machine. {_HOW_TO_PROVIDE}")


def is_hub_id(name: str | os.PathLike) -> bool:
    """'owner/name' that is neither a shipped model nor anything on disk: the only names the hub may resolve."""
    text = str(name)
    return (text not in SHIPPED_MODELS and not Path(text).expanduser().exists()
            and not text.startswith((".", "/", "~")) and text.count("/") == 1)


def resolve_folder(name_or_path: str | os.PathLike, what: str) -> Path:
    """A shipped model's name, a local folder as is, else a hub id resolved through the cache (or the hub when allowed)."""
    if str(name_or_path) in SHIPPED_MODELS:
        path = SHIPPED_MODELS[str(name_or_path)]
        if not path.is_dir():
            raise WeightsNotFoundError(
                f"the shipped model '{name_or_path}' is missing from {path}; reinstall the package, or rebuild it with "
                "the commands in recipes/shapes-default.toml"
            )
        return path
    path = recover_dir(Path(name_or_path).expanduser())  # a pipeline folder that a crash left in its sidecar
    if path.is_dir():
        return path
    if not is_hub_id(name_or_path):
        raise missing(what, name_or_path)
    from huggingface_hub import snapshot_download  # on use: its HTTP stack costs the CLI's --help a third of a second

    try:
        return Path(snapshot_download(str(name_or_path), local_files_only=hub_offline()))
    except Exception as err:  # the hub client raises a zoo of types; the user needs one sentence
        raise missing(what, name_or_path) from err


def check_safetensors(files: list[Path], what: str, name: str | os.PathLike) -> None:
    """Fail early and clearly: at least one weights file, and every one with a valid, complete header."""
    if not files:
        raise missing(f"{what} (safetensors weights)", name)
    for file in files:
        try:
            with safe_open(file, framework="pt"):
                pass
        except (SafetensorError, OSError) as err:
            raise CorruptWeightsError(f"{what} file '{file}' is corrupt or truncated ({err}); download or copy it again") from err
