"""Fixtures of the indexing tests that load a real (tiny) sentence-transformers model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import build_tiny_sentence_transformer


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny normalised BERT sentence-transformer (mean pooling + Normalize) built from a config, saved once
    per test module as sentence-transformers saves it (nothing is downloaded)."""
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny"), normalize=True, max_seq_length=32)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export cache per test module, so that each export variant is made once."""
    return tmp_path_factory.mktemp("encoders")
