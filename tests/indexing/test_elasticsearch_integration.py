"""Elasticsearch backend against a real cluster: the shared conformance suite, then build → search → rebuild →
alias swap → prune. Runs when ``MLSEARCH_ELASTICSEARCH_URL`` is set (credentials from the other
``MLSEARCH_ELASTICSEARCH_*`` settings), for example against ``docker compose up elasticsearch``; skipped otherwise.
Every test writes under its own index prefix and deletes it afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from indexing.backends.configs import backend_config, build_config, search_config
from indexing.backends.elasticsearch_index import ElasticsearchIndex, make_client
from indexing.build import build_index
from indexing.layout import current_version_dir
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import HashingEncoder, updated_settings
from tests.indexing.conformance import (
    DIMENSION,
    N_QUERIES,
    N_VECTORS,
    add_in_batches,
    check_backend,
    clustered_vectors,
    exact_top_k,
    recall_at_k,
    search_in_batches,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def es_settings(settings: Settings) -> Iterator[Settings]:
    """The test's settings with the cluster from the environment and a prefix of its own (cleaned up after)."""
    configured = Settings()
    cluster = configured.backend_options.get("elasticsearch", {})
    if not cluster.get("url"):
        pytest.skip("MLSEARCH_ELASTICSEARCH_URL is not set: no Elasticsearch cluster to test against")
    prefix = f"mlsearch-test-{uuid.uuid4().hex[:8]}"
    fields = {f"elasticsearch_{option}": value for option, value in cluster.items()}
    ready = updated_settings(settings, **fields, elasticsearch_index_prefix=prefix)
    yield ready
    client = make_client(str(cluster["url"]), backend_config("elasticsearch", ready))  # type: ignore[arg-type]
    names = list(client.indices.get_alias(index=f"{prefix}-*").body)  # wildcard deletes are refused by default
    if names:
        client.indices.delete(index=",".join(names))
    client.close()


def test_conformance_suite(es_settings: Settings, tmp_path: Path) -> None:
    """Full float HNSW: recall@10 against exact search, true inner products as scores, save → load."""
    assert check_backend(ElasticsearchIndex, es_settings, tmp_path, 0.95)["recall@10"] >= 0.95


@pytest.mark.parametrize("vector_index", ["int8_hnsw", "int4_hnsw"])  # bbq needs 64+ dimensions
def test_quantized_graphs_keep_recall(es_settings: Settings, vector_index: str) -> None:
    """Quantized graphs rescore with the float vectors: recall@10 stays high with an uneven batch size."""
    settings = updated_settings(es_settings, elasticsearch_vector_index=vector_index)
    data, queries = clustered_vectors(N_VECTORS, DIMENSION), clustered_vectors(N_QUERIES, DIMENSION, seed=1)
    index = ElasticsearchIndex(DIMENSION, backend_config("elasticsearch", settings))  # type: ignore[arg-type]
    add_in_batches(index, data, batch=997)
    _, ids = search_in_batches(index, queries, 10, batch=7)
    assert recall_at_k(ids, exact_top_k(data, queries, 10)) >= 0.9


def aliased(index: ElasticsearchIndex) -> set[str]:
    return set(index.client.indices.get_alias(name=index.alias).body)


def test_build_search_rebuild_swap_and_prune(
    es_settings: Settings, tiny_corpus: Path, fake_encoder: HashingEncoder
) -> None:
    backends = ["faiss", "bm25", "elasticsearch"]
    build_index(build_config(es_settings), fake_encoder, corpus_dir=tiny_corpus, backends=backends)
    first = Searcher.open(es_settings.index_dir, search_config(es_settings), encoder=fake_encoder)
    es_first = first.backend("elasticsearch")
    assert aliased(es_first) == {es_first.index} and es_first.similarity == "dot_product"

    query = "Kolmogorov-Smirnov test population stability index"
    for method in ("dense", "bm25", "hybrid"):
        hits = first.search(query, k=3, method=method, backend="elasticsearch").hits
        assert hits and hits[0].doc_id == "drift", method
        tagged = first.search("training momentum", k=10, method=method, backend="elasticsearch", tags=["drift"])
        assert {h.doc_id for h in tagged.hits} <= {"drift"}, method
    es_dense = first.retrieve("adam learning rate", 5, "dense", "elasticsearch")
    faiss_dense = first.retrieve("adam learning rate", 5, "dense", "faiss")
    assert [p for p, _ in es_dense] == [p for p, _ in faiss_dense]
    assert np.allclose([s for _, s in es_dense], [s for _, s in faiss_dense], atol=1e-3)

    # rebuild with a new article: the alias moves at once, the previous version stays readable
    (tiny_corpus / "bagging.md").write_text("# Bagging\n\nBootstrap aggregating trains trees on resampled data.")
    build_index(build_config(es_settings), fake_encoder, corpus_dir=tiny_corpus, backends=backends)
    second = Searcher.open(es_settings.index_dir, search_config(es_settings), encoder=fake_encoder)
    es_second = second.backend("elasticsearch")
    assert es_second.index != es_first.index and aliased(es_second) == {es_second.index}
    assert second.search("bootstrap aggregating", k=1, method="bm25", backend="elasticsearch").hits[0].doc_id == (
        "bagging"
    )
    assert first.search(query, k=1, method="bm25", backend="elasticsearch").hits[0].doc_id == "drift"

    # a third build (keep 2) deletes the first physical index; its local version is gone too
    build_index(build_config(es_settings), fake_encoder, corpus_dir=tiny_corpus, backends=backends)
    third = ElasticsearchIndex.load(
        current_version_dir(es_settings.index_dir) / "elasticsearch", backend_config("elasticsearch", es_settings)
    )
    assert aliased(third) == {third.index}
    assert not third.client.indices.exists(index=str(es_first.index))
    assert third.client.indices.exists(index=str(es_second.index))
    assert len(third) == len(second.store)
