"""Pseudo-relevance feedback: Rocchio on the dense side, RM3 fed by the fused list on the BM25 side."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from indexing.backends.bm25 import Bm25Config, Bm25Index
from indexing.backends.configs import build_config, search_config
from indexing.build import build_index
from indexing.layout import current_version_dir
from indexing.store import ChunkStore
from mlsearch.configs import DEFAULT_FEEDBACK, FeedbackConfig
from mlsearch.settings import Settings
from search.feedback import rocchio, with_first_pass
from search.fusion import FusionConfig, fuse
from search.searcher import QueryEmbeddingCache, Searcher
from search.smoothing import SMOOTHING_DEPTH, smooth
from tests.fakes import CountingEncoder, HashingEncoder, updated_settings

QUERY = "adam learning rate"
ON = FeedbackConfig(docs=3, query_weight=0.5, terms=5, term_weight=0.5)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_rocchio_moves_the_query_toward_the_feedback_and_keeps_its_length() -> None:
    rng = np.random.default_rng(0)
    query = rng.standard_normal(16).astype(np.float32)
    query /= np.linalg.norm(query)
    feedback = rng.standard_normal((4, 16)).astype(np.float32)
    centroid = feedback.mean(axis=0)
    moved = rocchio(query, feedback, 0.7)
    assert _cosine(moved, centroid) > _cosine(query, centroid)
    assert np.linalg.norm(moved) == pytest.approx(1.0, abs=1e-5)
    further = rocchio(query, feedback, 0.3)
    assert _cosine(further, centroid) > _cosine(moved, centroid)
    np.testing.assert_allclose(rocchio(query, feedback, 0.0), centroid / np.linalg.norm(centroid), atol=1e-6)


def test_rocchio_without_feedback_or_with_full_query_weight_is_the_query() -> None:
    query = np.array([0.6, 0.8], np.float32)
    assert rocchio(query, np.zeros((0, 2), np.float32), 0.5).tolist() == query.tolist()
    assert rocchio(query, np.array([[1.0, 0.0]]), 1.0).tolist() == query.tolist()


def test_feedback_config_rejects_bad_values() -> None:
    assert not FeedbackConfig().enabled and FeedbackConfig(docs=5).enabled
    assert FeedbackConfig().label() == "prf off"
    assert with_first_pass(FusionConfig(weights=(0.3, 0.7))).weights == (0.3, 0.7, 0.3, 0.7)
    for bad in ({"docs": -1}, {"terms": -2}, {"query_weight": 1.5}, {"term_weight": -0.1}):
        with pytest.raises(ValueError):
            FeedbackConfig(**bad)  # type: ignore[arg-type]


def test_the_settings_reach_the_search_config(settings: Settings) -> None:
    config = search_config(updated_settings(settings, prf_docs=4, prf_query_weight=0.6, prf_terms=0))
    assert config.feedback == FeedbackConfig(docs=4, query_weight=0.6, terms=0, term_weight=0.5)
    assert search_config(settings).feedback == DEFAULT_FEEDBACK and DEFAULT_FEEDBACK.enabled
    assert not search_config(updated_settings(settings, prf_docs=0)).feedback.enabled


@pytest.fixture
def searcher(built_index: Path, settings: Settings, fake_encoder: HashingEncoder) -> Searcher:
    return Searcher.open(built_index, search_config(settings), encoder=fake_encoder)


def test_zero_feedback_chunks_change_nothing(searcher: Searcher) -> None:
    plain = searcher.retrieve(QUERY, 10, "hybrid", feedback=FeedbackConfig())
    lists = [searcher.retrieve(QUERY, 100, "dense"), searcher.retrieve(QUERY, 100, "bm25")]
    assert plain == fuse(searcher.fusion, lists)[:10]
    assert searcher.retrieve(QUERY, 10, "hybrid", feedback=FeedbackConfig(docs=0, query_weight=0.1)) == plain
    assert searcher.retrieve(QUERY, 10, "dense", feedback=ON) == searcher.retrieve(QUERY, 10, "dense")


def test_feedback_encodes_the_query_once(built_index: Path, settings: Settings) -> None:
    encoder = CountingEncoder()
    searcher = Searcher.open(built_index, search_config(settings), encoder=encoder)
    searcher.cache = QueryEmbeddingCache(0)  # as evaluation runs: nothing cached
    searcher.retrieve(QUERY, 10, "hybrid", feedback=ON)
    assert encoder.calls == [[QUERY]]


def test_feedback_searches_again_with_a_query_nearer_the_fused_top(
    searcher: Searcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = searcher.backend("faiss")
    asked: list[np.ndarray] = []
    search = index.search

    def spy(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        asked.append(np.array(queries[0]))
        return search(queries, k)

    monkeypatch.setattr(index, "search", spy)
    first = searcher.retrieve(QUERY, 10, "hybrid", feedback=FeedbackConfig())
    assert len(asked) == 1
    refined = searcher.retrieve(QUERY, 10, "hybrid", feedback=ON)
    assert len(asked) == 3  # the first pass, then the Rocchio query
    top = [p for p, _ in first[: ON.docs]]
    centroid = searcher.feedback_vectors("faiss", top).mean(axis=0)
    assert _cosine(asked[2], centroid) > _cosine(asked[1], centroid)
    np.testing.assert_allclose(asked[2], rocchio(asked[1], searcher.feedback_vectors("faiss", top), ON.query_weight))
    assert refined and refined != first


def test_feedback_refines_bm25_with_terms_of_the_fused_top(searcher: Searcher) -> None:
    plain = searcher.retrieve(QUERY, 100, "hybrid", feedback=FeedbackConfig())
    steps = [("dense", "faiss"), ("bm25", "bm25")]
    lists = [searcher.retrieve(QUERY, 100, "dense"), searcher.retrieve(QUERY, 100, "bm25")]
    chosen = [p for p, _ in plain[: ON.docs]]
    dense, bm25 = searcher.feedback_lists(QUERY, steps, lists, chosen, ON, 100, None)
    index = searcher.backend("bm25")
    assert isinstance(index, Bm25Index)
    scores, ids = index.feedback_search(QUERY, chosen, SMOOTHING_DEPTH, ON.terms, ON.term_weight)
    raw = [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True)]
    assert searcher.neighbours is not None  # the expanded list is smoothed too, as every BM25 list
    expected = smooth(raw, searcher.neighbours, searcher.config.smoothing.weight)[:100]
    assert [p for p, _ in bm25] == [p for p, _ in expected]
    np.testing.assert_allclose([s for _, s in bm25], [s for _, s in expected], rtol=1e-6)
    assert searcher.retrieve(QUERY, 100, "hybrid", feedback=ON) == fuse(
        with_first_pass(searcher.fusion), [*lists, dense, bm25])
    replacing = replace(ON, keep_first_pass=False)
    assert searcher.retrieve(QUERY, 100, "hybrid", feedback=replacing) == fuse(searcher.fusion, [dense, bm25])
    dense_only = searcher.feedback_lists(QUERY, steps, lists, chosen, FeedbackConfig(3, 0.5, terms=0), 100, None)
    assert dense_only[1] == lists[1]


def test_feedback_keeps_the_tag_filter(searcher: Searcher) -> None:
    hits = searcher.search("training", k=10, method="hybrid", tags=["drift"]).hits
    searcher.config = type(searcher.config)(**{**searcher.config.__dict__, "feedback": ON})
    refined = searcher.search("training", k=10, method="hybrid", tags=["drift"]).hits
    assert refined and {h.doc_id for h in refined} <= {"drift"}
    assert {h.doc_id for h in hits} <= {"drift"}


def test_a_filtered_search_with_feedback_looks_the_allowed_chunks_up_once(
    searcher: Searcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    searcher.config = type(searcher.config)(**{**searcher.config.__dict__, "feedback": ON})
    calls: list[object] = []
    real = searcher.store.positions_matching
    monkeypatch.setattr(searcher.store, "positions_matching", lambda f: calls.append(f) or real(f))
    assert searcher.search("training", k=10, method="hybrid", tags=["drift"]).hits
    assert len(calls) == 1  # the first pass and the feedback pass share it
    searcher.search("training", k=10, method="hybrid")
    assert len(calls) == 1  # no filter: nothing to look up


def test_bm25_feedback_search_adds_terms_of_the_feedback_texts() -> None:
    index = Bm25Index(Bm25Config())
    index.build(["adam optimizer momentum", "adam learning rate warmup", "momentum velocity descent",
                 "unrelated cooking recipe"])
    assert 2 not in index.search("adam", 10)[1][0].tolist()
    expanded = index.feedback_search("adam", [0], 10, terms=5, weight=0.5)[1][0].tolist()
    assert 2 in expanded and 3 not in expanded  # shares "momentum" with the feedback text only
    plain = index.search("adam", 10)
    for same in (index.feedback_search("adam", [0], 10, terms=0), index.feedback_search("adam", [], 10),
                 index.feedback_search("adam", [99], 10)):
        np.testing.assert_array_equal(same[1], plain[1])
        np.testing.assert_allclose(same[0], plain[0])


VECTOR_CASES = [
    pytest.param("faiss", {}, id="faiss-flat"),
    pytest.param("faiss", {"faiss_factory": "HNSW32"}, id="faiss-hnsw"),
    pytest.param("faiss", {"faiss_factory": "IVF2,Flat"}, id="faiss-ivf"),
    pytest.param("faiss", {"faiss_quantization": "int8"}, id="faiss-int8"),
    pytest.param("faiss", {"faiss_quantization": "binary"}, id="faiss-binary"),
    pytest.param("annoy", {}, id="annoy"),
    pytest.param("usearch", {}, id="usearch-f32"),
    pytest.param("usearch", {"usearch_dtype": "i8"}, id="usearch-i8"),
]


def _forget_stored_embeddings(index_dir: Path) -> None:
    with sqlite3.connect(current_version_dir(index_dir) / ChunkStore.FILE) as db:
        db.execute("UPDATE chunks SET embedding = NULL")


@pytest.mark.parametrize(("backend", "overrides"), VECTOR_CASES)
def test_feedback_works_with_every_local_vector_backend_even_without_stored_embeddings(
    backend: str, overrides: dict, tiny_corpus: Path, settings: Settings, tmp_path: Path
) -> None:
    pytest.importorskip({"faiss": "faiss", "annoy": "annoy", "usearch": "usearch"}[backend])
    encoder = CountingEncoder()
    # smoothing needs stored embeddings (without them it is off), so it is off on both sides here
    custom = updated_settings(settings, index_dir=tmp_path / "idx", smoothing_weight=0.0, **overrides)
    build_index(build_config(custom), encoder, corpus_dir=tiny_corpus, backends=[backend, "bm25"])
    stored = Searcher.open(custom.index_dir, search_config(custom), encoder=encoder)
    first = [p for p, _ in stored.retrieve(QUERY, 5, "hybrid", backend)]
    expected = stored.feedback_vectors(backend, first[:3])
    assert expected.shape == (3, encoder.dimension)
    with_feedback = stored.retrieve(QUERY, 5, "hybrid", backend, feedback=ON)
    stored.close()

    _forget_stored_embeddings(custom.index_dir)  # the backend must give its vectors back (reconstructed)
    encoder.calls.clear()
    reconstructed = Searcher.open(custom.index_dir, search_config(custom), encoder=encoder)
    assert reconstructed.store.embeddings_at(first) == {}
    np.testing.assert_allclose(reconstructed.feedback_vectors(backend, first[:3]), expected, atol=1e-5)
    assert reconstructed.retrieve(QUERY, 5, "hybrid", backend, feedback=ON) == with_feedback
    assert encoder.calls == [[QUERY]]  # only the query was encoded: no chunk was embedded again
    reconstructed.close()


def test_a_backend_that_cannot_give_vectors_back_has_the_chunks_embedded_again(
    built_index: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder = CountingEncoder()
    searcher = Searcher.open(built_index, search_config(settings), encoder=encoder)
    positions = [p for p, _ in searcher.retrieve(QUERY, 3, "hybrid")]
    expected = searcher.feedback_vectors("faiss", positions)
    _forget_stored_embeddings(built_index)
    assert searcher.store.embeddings_at(positions) == {}
    index = searcher.backend("faiss")

    def refuse(ids: np.ndarray) -> np.ndarray:
        raise ValueError("lossy")

    monkeypatch.setattr(index, "vectors", refuse)
    encoder.calls.clear()
    again = searcher.feedback_vectors("faiss", positions)
    np.testing.assert_allclose(again, expected, atol=1e-5)
    chunks = searcher.store.get(positions)
    assert encoder.calls == [[chunks[p].embedding_text for p in positions]]


def test_rm3_reads_the_feedback_texts_terms_without_copying_the_score_matrix(tmp_path: Path) -> None:
    texts = [f"adam optimizer {'momentum ' * (i % 3)} rate {i % 7} gradient w{i % 11} w{i % 5}" for i in range(120)]
    built = Bm25Index(Bm25Config(rm3_terms=5))
    built.build(texts)
    built.save(tmp_path)
    loaded = Bm25Index.load(tmp_path, Bm25Config())
    lengths = [len(built._terms(text)) for text in texts]
    assert loaded.describe()["mean_length"] == pytest.approx(np.mean(lengths))  # saved: no pass over the counts
    feedback, weights = np.array([3, 10, 50]), np.array([0.5, 0.3, 0.2])
    from_terms = loaded._relevance_model(feedback, weights)
    assert loaded._by_document is None  # the stored terms sufficed
    loaded._has_terms = False  # an index saved before terms were kept: the transposed matrix
    np.testing.assert_allclose(loaded._relevance_model(feedback, weights), from_terms, rtol=1e-5, atol=1e-7)
    loaded._has_terms = True
    for search in (lambda i: i.search("adam momentum", 20), lambda i: i.feedback_search("rate", [1, 2], 20, 5, 0.5)):
        (a_scores, a_ids), (b_scores, b_ids) = search(built), search(loaded)
        np.testing.assert_array_equal(a_ids, b_ids)
        np.testing.assert_allclose(a_scores, b_scores, rtol=1e-6)
