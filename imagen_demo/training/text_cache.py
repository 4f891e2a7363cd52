"""Text embeddings precomputed on disk: a fixed caption set is encoded once, across runs and resumes.

One safetensors file per caption (named by its hash) holds that caption's token embeddings and mask;
`meta.json` pins the encoder and max_length, so a cache is never read with another encoder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..core.text_encoder import TextEmbeddings, TextEncoder
from ..utils.atomic import atomic_path


class DiskEmbeddingCache:
    def __init__(self, encoder: TextEncoder, folder: str | Path):
        self.encoder, self.folder = encoder, Path(folder)
        meta = {"text_encoder": str(encoder.name_or_path), "max_length": encoder.max_length, "dim": encoder.dim}
        meta_file = self.folder / "meta.json"
        if meta_file.is_file():
            found = json.loads(meta_file.read_text())
            if found != meta:
                raise ValueError(f"text cache {self.folder} was made with {found}, not {meta}; use another text_cache folder")
        else:
            with atomic_path(meta_file) as tmp:  # processes of a multi-process run may start it together
                tmp.write_text(json.dumps(meta) + "\n")

    def _file(self, caption: str) -> Path:
        return self.folder / f"{hashlib.sha1(caption.encode()).hexdigest()}.safetensors"

    def encode(self, captions: list[str]) -> TextEmbeddings:
        """Same result as `encoder.encode(captions)`, reading what is on disk and writing what is not."""
        todo = [c for c in dict.fromkeys(captions) if not self._file(c).is_file()]
        if todo:
            fresh = self.encoder.encode(todo)
            for caption, embeddings, mask in zip(todo, fresh.embeddings, fresh.mask):
                with atomic_path(self._file(caption)) as tmp:
                    save_file({"embeddings": embeddings.cpu().contiguous(), "mask": mask.cpu().contiguous()}, tmp)
        stored = [load_file(self._file(c)) for c in captions]
        device = self.encoder.device
        return TextEmbeddings(torch.stack([s["embeddings"] for s in stored]).to(device),
                              torch.stack([s["mask"] for s in stored]).to(device))
