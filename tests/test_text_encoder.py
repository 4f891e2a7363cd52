"""The frozen text encoder: tiny T5 (tokenizer trained in the test), the MiniLM default, cache, errors."""

from __future__ import annotations

import logging

import pytest
import torch

from imagen_demo import DEFAULT_TEXT_ENCODER, TextEncoder
from imagen_demo.core.loading import WeightsNotFoundError


def test_tiny_t5_encodes_tokens_and_mask(tiny_encoder):
    out = tiny_encoder.encode(["a red circle above a blue square", "two green stars"])
    assert out.embeddings.shape == (2, 16, 32) and out.mask.shape == (2, 16) and out.mask.dtype == torch.bool
    assert type(tiny_encoder.model).__name__ == "T5EncoderModel", "encoder-decoder families load encoder-only"
    lengths = out.mask.sum(1).tolist()
    assert lengths[0] > lengths[1] > 0 and out.mask[:, 0].all()
    assert not tiny_encoder.model.training and not any(p.requires_grad for p in tiny_encoder.model.parameters())


def test_embedding_does_not_depend_on_the_batch(tiny_encoder):
    alone = tiny_encoder._encode_uncached(["two green stars"])[0][0]
    crowd = tiny_encoder._encode_uncached(["a photo of a cat on a mat", "two green stars"])[0][1]
    torch.testing.assert_close(alone, crowd, atol=1e-5, rtol=1e-5)


def test_cache_makes_a_repeated_prompt_free(tiny_t5_dir, monkeypatch):
    encoder = TextEncoder.from_pretrained(tiny_t5_dir, max_length=16, cache_size=2)
    calls = []
    real = encoder._encode_uncached
    monkeypatch.setattr(encoder, "_encode_uncached", lambda prompts: calls.append(list(prompts)) or real(prompts))
    first = encoder.encode(["a", "b", "a"])
    second = encoder.encode(["b", "a"])
    assert calls == [["a", "b"]]
    torch.testing.assert_close(first.embeddings[[1, 0]], second.embeddings)
    encoder.encode(["c"])  # evicts the least recently used ("b" was used before "a")
    encoder.encode(["a"])
    encoder.encode(["b"])
    assert calls == [["a", "b"], ["c"], ["b"]]


def test_long_prompt_is_truncated_with_a_warning(tiny_encoder, caplog):
    prompt = "the quick brown fox jumps over the lazy dog " * 10
    assert tiny_encoder.is_truncated(prompt) and not tiny_encoder.is_truncated("two green stars")
    with caplog.at_level(logging.WARNING):
        out = tiny_encoder.encode(prompt)
    assert out.mask.sum() == 16 and "truncated" in caplog.text


def test_minilm_default_encodes_offline():
    encoder = TextEncoder.from_pretrained(DEFAULT_TEXT_ENCODER, max_length=32)
    out = encoder.encode(["a red circle above a blue square", "a red circle below a blue square", "a dog"])
    assert encoder.dim == 384 and out.embeddings.shape == (3, 32, 384)
    pooled = torch.nn.functional.normalize(
        (out.embeddings * out.mask[..., None]).sum(1) / out.mask.sum(1, keepdim=True), dim=-1
    )
    # A real pretrained encoder: two near-identical captions are closer to each other than to "a dog".
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2]


def test_missing_encoder_names_what_is_missing_and_how_to_provide_it(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"'google/t5-v1_1-xxl' is not available.*HF_HUB_OFFLINE=0"):
        TextEncoder.from_pretrained("google/t5-v1_1-xxl")
    with pytest.raises(WeightsNotFoundError, match="not available"):
        TextEncoder.from_pretrained(tmp_path / "no-such-folder")
