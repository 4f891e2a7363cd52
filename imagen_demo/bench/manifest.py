"""The manifest: the append-only record of a run folder's finished images, and the keys that name them.

Processes sharing a run (``torchrun ... -m benchmarks run``) never write one file: process 0, or a lone process,
appends to ``manifest.jsonl`` and process r to ``manifest.rank<r>.jsonl``. An append is then never interleaved with
another process's, a torn last line (a process killed mid-write) can only be its own, and reading merges the files,
so a folder made by any number of processes reads like one made by one process.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from imagen_demo.registry import TextToImageModel

from .jsonl import append_jsonl, read_jsonl

MANIFEST_FILE = "manifest.jsonl"


def fingerprint(model: TextToImageModel) -> str:
    return hashlib.sha1(json.dumps(model.describe(), sort_keys=True, default=str).encode()).hexdigest()[:10]


def entry_key(kind: str, model: str, model_fingerprint: str, item_id: str, seed: int) -> str:
    return f"{kind}|{model}|{model_fingerprint}|{item_id}|{seed}"


def manifest_file(out: Path, rank: int = 0) -> Path:
    return out / (MANIFEST_FILE if rank == 0 else f"manifest.rank{rank}.jsonl")


def manifest_files(out: Path) -> list[Path]:
    """Every process's file, process 0's first, then by rank."""
    ranks = {int(rank) for path in out.glob("manifest.rank*.jsonl")
             if (rank := path.stem.removeprefix("manifest.rank")).isdigit()}
    return [manifest_file(out, rank) for rank in [0, *sorted(ranks - {0})]]


class Manifest:
    """Finished images of a run folder, read from every process's file; `add` appends to process `rank`'s own.

    A half-written last line (a kill mid-write) is ignored."""

    def __init__(self, out: Path, rank: int = 0):
        self.out, self.path = out, manifest_file(out, rank)
        self.entries: dict[str, dict] = {row["key"]: row for path in manifest_files(out)
                                         for row in read_jsonl(path) if "key" in row}

    def done(self, key: str) -> bool:
        return key in self.entries and (self.out / self.entries[key]["image"]).is_file()

    def add(self, entry: dict) -> None:
        append_jsonl(self.path, [entry])
        self.entries[entry["key"]] = entry
