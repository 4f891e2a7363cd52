"""Shared fixtures: tiny models built once per test session, offline."""

from __future__ import annotations

import pytest

from imagen_demo import TextEncoder
from tiny import build_tiny_pipeline, build_tiny_t5


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory):
    return build_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))


@pytest.fixture(scope="session")
def tiny_encoder(tiny_t5_dir):
    return TextEncoder.from_pretrained(tiny_t5_dir, max_length=16)


@pytest.fixture
def own_encoder(tiny_t5_dir):
    """The tiny encoder with its own embedding cache: a prompt encoded alone can differ in the last bits from the same
    prompt encoded in a batch, and tests sharing `tiny_encoder` compare pipelines bit for bit."""
    return TextEncoder.from_pretrained(tiny_t5_dir, max_length=16)


@pytest.fixture
def tiny_pipe(tiny_encoder):
    return build_tiny_pipeline(tiny_encoder)


@pytest.fixture(scope="session")
def tiny_pipe_dir(tiny_encoder, tmp_path_factory):
    """A saved tiny pipeline folder carrying its own text encoder (what a user would ship)."""
    path = tmp_path_factory.mktemp("pipes") / "tiny"
    build_tiny_pipeline(tiny_encoder).save_pretrained(path, store_text_encoder=True)
    return path
