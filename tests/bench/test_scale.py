"""The scale benchmark's hybrid timing: query embeddings cached beforehand, a FAISS variant standing in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.scale import _hybrid_latencies, _hybrid_searcher
from indexing.backends.configs import build_config
from indexing.backends.faiss_index import FaissConfig, FaissIndex
from indexing.build import build_index
from indexing.layout import current_version_dir
from mlsearch.configs import DEFAULT_FEEDBACK, FeedbackConfig
from mlsearch.settings import Settings
from tests.fakes import CountingEncoder

QUERIES = ["adam learning rate", "population stability index", "similarity search over dense vectors"]


class CountingIndex:
    """A vector index that counts its searches and answers with the one it wraps."""

    def __init__(self, inner: FaissIndex) -> None:
        self.inner = inner
        self.searches = 0

    def search(self, vectors: np.ndarray, k: int) -> Any:
        """Count, then search the wrapped index."""
        self.searches += 1
        return self.inner.search(vectors, k)


def built(tmp_path: Path, tiny_corpus: Path, encoder: CountingEncoder) -> Path:
    """The tiny corpus built with FAISS and BM25 under ``tmp_path/index``, as the scale benchmark lays it out."""
    settings = Settings(index_dir=tmp_path / "index", chunk_target_tokens=48, chunk_overlap_tokens=8)
    build_index(build_config(settings), encoder, corpus_dir=tiny_corpus, backends=["faiss", "bm25"])
    return tmp_path


def test_hybrid_timing_never_encodes_and_times_both_feedback_settings(tmp_path: Path, tiny_corpus: Path) -> None:
    encoder = CountingEncoder()
    work = built(tmp_path, tiny_corpus, encoder)
    vectors = encoder.encode(QUERIES)
    encoder.calls.clear()

    searcher = _hybrid_searcher(work, encoder, QUERIES, vectors)
    timings = _hybrid_latencies(searcher, QUERIES, len(QUERIES))

    assert set(timings) == {"hybrid", "hybrid-prf"}
    assert all(0 < t["p50"] <= t["p95"] for t in timings.values())
    assert encoder.calls == []  # neither the queries nor the feedback chunks were encoded
    searcher.close()


def test_a_variant_stands_in_for_the_exact_index_and_feedback_searches_it_again(
    tmp_path: Path, tiny_corpus: Path
) -> None:
    encoder = CountingEncoder()
    work = built(tmp_path, tiny_corpus, encoder)
    vectors = encoder.encode(QUERIES)
    exact = FaissIndex.load(current_version_dir(work / "index") / "faiss", FaissConfig())
    variant = CountingIndex(exact)
    searcher = _hybrid_searcher(work, encoder, QUERIES, vectors, variant)

    without = searcher.retrieve(QUERIES[0], 10, "hybrid", feedback=FeedbackConfig())
    assert without and variant.searches == 1
    with_feedback = searcher.retrieve(QUERIES[0], 10, "hybrid", feedback=DEFAULT_FEEDBACK)
    assert with_feedback and variant.searches == 3  # the first pass, then the Rocchio query
    searcher.close()


def test_the_update_step_gives_documents_new_text_and_splices_the_graph(tmp_path: Path) -> None:
    from bench.scale import SECTIONS_PER_DOC, HashedProjectionEncoder, run_update, sentence_pool, write_corpus
    from indexing.neighbours import NeighbourGraph, compute_graph
    from indexing.store import ChunkStore

    write_corpus(tmp_path / "corpus", 6 * SECTIONS_PER_DOC, sentence_pool(tmp_path / "no-datasets"))
    settings = Settings(index_dir=tmp_path / "index")
    build_index(build_config(settings), HashedProjectionEncoder(), corpus_dir=tmp_path / "corpus",
                backends=["faiss", "bm25"])
    before = current_version_dir(settings.index_dir)

    result = run_update(tmp_path, "fake", 2, tmp_path / "no-datasets")

    after = current_version_dir(settings.index_dir)
    assert after != before and result["update_embedded"] == 2 * SECTIONS_PER_DOC
    assert "neighbour_graph" in result["update_stages"] and result["update_peak_rss_mb"] > 0
    store = ChunkStore(after / ChunkStore.FILE)
    try:
        expected = compute_graph(store.embeddings())
    finally:
        store.close()
    graph = NeighbourGraph.load(after)
    assert graph is not None and np.array_equal(graph.ids, expected.ids)
