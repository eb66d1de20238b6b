"""Quantized FAISS indexes through the whole pipeline: built, published, loaded and rescored exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexing.backends.configs import build_config, search_config
from indexing.build import build_index
from indexing.layout import current_version_dir
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import HashingEncoder, updated_settings


@pytest.mark.parametrize("quantization", ["int8", "binary"])
def test_quantized_index_answers_like_exact_search(
    quantization: str, tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    exact = settings.model_copy(update={"index_dir": settings.index_dir.parent / "exact"})
    build_index(build_config(exact), fake_encoder, corpus_dir=tiny_corpus, backends=["faiss"])
    quantized = updated_settings(settings, faiss_quantization=quantization, faiss_rescore=50)
    build_index(build_config(quantized), fake_encoder, corpus_dir=tiny_corpus, backends=["faiss"])

    described = json.loads((current_version_dir(quantized.index_dir) / "manifest.json").read_text())["backends"]
    assert described["faiss"]["quantization"] == quantization and described["faiss"]["rescore"] == 50
    assert (current_version_dir(quantized.index_dir) / "faiss" / "vectors.f32").is_file()
    for query in ("dropout rate", "gradient descent momentum", "population stability index"):
        want = Searcher.open(exact.index_dir, search_config(exact), encoder=fake_encoder).search(query, k=5)
        # the index records its own quantization: a searcher with default settings still reads it right
        got = Searcher.open(quantized.index_dir, search_config(settings), encoder=fake_encoder).search(query, k=5)
        assert [h.id for h in got.hits] == [h.id for h in want.hits]
        assert [round(h.score, 5) for h in got.hits] == [round(h.score, 5) for h in want.hits]
