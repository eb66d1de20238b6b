"""Searcher: every method and backend over the tiny index, tag filters, errors, the query cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing.backends.configs import build_config, search_config
from mlsearch.configs import FeedbackConfig
from mlsearch.errors import BadQueryError, IndexNotBuiltError, UnknownBackendError
from mlsearch.settings import Settings
from search.fusion import convex_combination, reciprocal_rank_fusion
from search.searcher import HYBRID_CANDIDATES, Searcher
from tests.fakes import HashingEncoder, updated_settings


@pytest.fixture
def searcher(built_index: Path, settings: Settings, fake_encoder: HashingEncoder) -> Searcher:
    return Searcher.open(built_index, search_config(settings), encoder=fake_encoder)


@pytest.mark.parametrize(
    ("method", "backend"),
    [
        ("dense", "faiss"), ("dense", "annoy"), ("lsi", "faiss"), ("bm25", "faiss"),
        ("hybrid", "faiss"), ("hybrid", "annoy"),
    ],
)
def test_every_method_finds_the_obvious_document(searcher: Searcher, method: str, backend: str) -> None:
    result = searcher.search("Kolmogorov-Smirnov test population stability index", k=3, method=method, backend=backend)
    assert result.hits, method
    top = result.hits[0]
    assert top.doc_id == "drift" and top.title == "Data drift"
    assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    assert all(a.score >= b.score for a, b in zip(result.hits, result.hits[1:], strict=False))
    assert result.took_ms >= 0


def test_dense_scores_are_inner_products(searcher: Searcher, fake_encoder: HashingEncoder) -> None:
    hit = searcher.search("momentum velocity", k=1).hits[0]
    chunk = searcher.store.get([hit.position])[hit.position]
    expected = float(fake_encoder.encode(["momentum velocity"])[0] @ fake_encoder.encode([chunk.embedding_text])[0])
    assert hit.score == pytest.approx(expected, abs=1e-4)


def test_tag_filters_keep_only_tagged_chunks(searcher: Searcher) -> None:
    for method in ("dense", "lsi", "bm25", "hybrid"):
        hits = searcher.search("training", k=10, method=method, tags=["drift"]).hits
        assert {h.doc_id for h in hits} <= {"drift"}, method
    assert searcher.search("dropout", k=5, tags=["no-such-tag"]).hits == []


def test_untuned_hybrid_is_the_equal_weight_zscore_fusion_of_dense_and_bm25(searcher: Searcher) -> None:
    query = "adam learning rate"
    dense = searcher.retrieve(query, HYBRID_CANDIDATES, "dense")
    bm25 = searcher.retrieve(query, HYBRID_CANDIDATES, "bm25")
    hybrid = searcher.retrieve(query, 10, "hybrid", feedback=FeedbackConfig())  # feedback: tests/search/test_feedback
    assert (searcher.fusion.kind, searcher.fusion.normalization) == ("convex", "zscore")
    assert searcher.fusion.weights[0] == searcher.fusion.weights[1]
    assert hybrid == convex_combination([dense, bm25], [1.0, 1.0], "zscore")[:10]


def test_the_fusion_setting_brings_back_rrf(
    built_index: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    rrf = Searcher.open(built_index, search_config(updated_settings(settings, fusion="rrf")), encoder=fake_encoder)
    query = "adam learning rate"
    dense = [p for p, _ in rrf.retrieve(query, HYBRID_CANDIDATES, "dense")]
    bm25 = [p for p, _ in rrf.retrieve(query, HYBRID_CANDIDATES, "bm25")]
    assert rrf.fusion.kind == "rrf"
    plain = rrf.retrieve(query, 10, "hybrid", feedback=FeedbackConfig())
    assert plain == reciprocal_rank_fusion([dense, bm25], k=settings.rrf_k)[:10]


def test_snippet_shows_the_query_terms(searcher: Searcher) -> None:
    hit = searcher.search("momentum", k=1, method="bm25").hits[0]
    assert "omentum" in hit.snippet


def test_bad_queries_are_rejected(searcher: Searcher) -> None:
    with pytest.raises(BadQueryError):
        searcher.search("   ")
    with pytest.raises(BadQueryError):
        searcher.search("dropout", k=0)
    with pytest.raises(BadQueryError):
        searcher.search("dropout", method="magic")
    with pytest.raises(UnknownBackendError):
        searcher.search("dropout", backend="nope")


def test_a_backend_that_was_not_built_is_named(
    tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    from indexing.build import build_index

    build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=["bm25"])
    searcher = Searcher.open(settings.index_dir, search_config(settings), encoder=fake_encoder)
    assert searcher.search("dropout", method="bm25").hits
    with pytest.raises(IndexNotBuiltError, match="'faiss'"):
        searcher.search("dropout", method="dense")


def test_query_embeddings_are_cached(searcher: Searcher, fake_encoder: HashingEncoder) -> None:
    before = fake_encoder.encoded_texts
    searcher.search("dropout rate", k=2)
    searcher.search("dropout rate", k=2, backend="annoy")
    assert fake_encoder.encoded_texts == before + 1
    assert searcher.cache.hits == 1
