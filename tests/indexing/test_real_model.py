"""End-to-end indexing with the real bundled model: the shipped corpus and the user's messy notes."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing.backends.configs import build_config, search_config
from indexing.build import build_index
from indexing.layout import current_version_dir
from indexing.store import ChunkStore
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.conftest import shared_path

pytestmark = pytest.mark.slow


def test_shipped_corpus_is_indexed_within_the_model_limit(real_corpus_index: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    store = ChunkStore(current_version_dir(real_corpus_index) / ChunkStore.FILE)
    stats = store.token_stats()
    assert stats["documents"] >= 40
    assert 0 < stats["max_tokens"] <= 256
    lengths = real_encoder.count_tokens([c.embedding_text for c in store])
    assert max(lengths) <= 256  # measured again with the model's own tokenizer

    searcher = Searcher.open(real_corpus_index, search_config(Settings()), encoder=real_encoder)
    hits = searcher.search("my validation loss goes up while training loss keeps falling", k=5).hits
    assert {"overfitting-underfitting-bias-variance", "early-stopping-and-callbacks", "regularization"} & {
        h.doc_id for h in hits
    }


def test_messy_notes_are_indexed_within_the_model_limit(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    notes = shared_path("notes")
    settings = Settings(index_dir=tmp_path / "notes")
    summary = build_index(build_config(settings), real_encoder, corpus_dir=notes, backends=["faiss", "bm25"])
    assert summary.chunks > 50 and summary.skipped == []
    assert summary.max_tokens <= real_encoder.max_seq_length
    store = ChunkStore(current_version_dir(settings.index_dir) / ChunkStore.FILE)
    assert max(real_encoder.count_tokens([c.embedding_text for c in store])) <= 256
    # tables and LaTeX survive as text, and headings are recorded
    assert any("$$" in c.text or "\\" in c.text for c in store)
    assert sum(1 for c in store if c.heading) > summary.chunks // 2


def test_counting_tokens_never_disturbs_a_concurrent_encode(real_encoder) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    backend = real_encoder.model.tokenizer.backend_tokenizer
    real_encoder.encode(["warm up", "a longer warm up query"])
    padding, truncation = backend.padding, backend.truncation
    real_encoder.count_tokens(["a text counted without truncation or padding"])
    assert (backend.padding, backend.truncation) == (padding, truncation)  # the model's tokenizer is untouched

    queries = [" ".join(["overfitting"] * n) for n in range(1, 12)]

    def encode(i: int) -> int:
        return len(real_encoder.encode([queries[i % 11], queries[(i * 7) % 11]]))

    def count(i: int) -> int:
        return len(real_encoder.count_tokens([queries[i % 11]] * 3))

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(encode if i % 2 else count, i) for i in range(120)]
        assert [f.result() for f in futures] == [2 if i % 2 else 3 for i in range(120)]
