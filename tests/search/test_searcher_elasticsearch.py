"""Searcher with ``backend="elasticsearch"``: kNN, BM25 match, hybrid and tag filters run in Elasticsearch.

The index is built through the real client against :mod:`tests.indexing.es_fake`; the unreachable case uses
the real network stack against a closed loopback port.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexing.backends.configs import build_config, search_config
from indexing.build import build_index
from mlsearch.errors import BackendUnavailableError
from mlsearch.settings import Settings
from search.fusion import fuse
from search.searcher import HYBRID_CANDIDATES, Searcher
from tests.fakes import HashingEncoder, updated_settings
from tests.indexing import es_fake

QUERY = "Kolmogorov-Smirnov test population stability index"


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> es_fake.FakeCluster:
    return es_fake.install(monkeypatch)


@pytest.fixture
def es_settings(settings: Settings) -> Settings:
    """Hybrid without feedback: these tests follow the plain fusion's requests (feedback: the last test)."""
    return updated_settings(settings, elasticsearch_url="http://es.test:9200", prf_docs=0)


@pytest.fixture
def searcher(
    cluster: es_fake.FakeCluster, tiny_corpus: Path, es_settings: Settings, fake_encoder: HashingEncoder
) -> Searcher:
    build_index(build_config(es_settings), fake_encoder, corpus_dir=tiny_corpus,
                backends=["faiss", "lsi", "bm25", "elasticsearch"])
    return Searcher.open(es_settings.index_dir, search_config(es_settings), encoder=fake_encoder)


def last_search(cluster: es_fake.FakeCluster) -> list[dict]:
    return cluster.calls("POST", r"/mlsearch-.*/_msearch")[-1].body


@pytest.mark.parametrize("method", ["dense", "bm25", "hybrid"])
def test_every_method_runs_in_elasticsearch(searcher: Searcher, cluster: es_fake.FakeCluster, method: str) -> None:
    result = searcher.search(QUERY, k=3, method=method, backend="elasticsearch")
    assert result.backend == "elasticsearch" and result.hits
    assert result.hits[0].doc_id == "drift"
    body = last_search(cluster)
    kinds = [sorted(line) for line in body[1::2]]
    expected = {"dense": [["_source", "knn", "size"]], "bm25": [["_source", "query", "size"]],
                "hybrid": [["_source", "knn", "size"], ["_source", "query", "size"]]}[method]
    assert kinds == expected


def test_hits_map_back_to_the_chunk_store(searcher: Searcher, cluster: es_fake.FakeCluster) -> None:
    hits = searcher.search("dropout rate", k=5, method="dense", backend="elasticsearch").hits
    index = searcher.backend("elasticsearch")
    stored = cluster.indices[index.index].docs
    for hit in hits:
        assert stored[str(hit.position)]["chunk_id"] == hit.id
        assert stored[str(hit.position)]["text"] == hit.text


def test_dense_agrees_with_faiss(searcher: Searcher) -> None:
    es = searcher.retrieve("momentum velocity", 5, "dense", "elasticsearch")
    faiss = searcher.retrieve("momentum velocity", 5, "dense", "faiss")
    assert [p for p, _ in es] == [p for p, _ in faiss]
    assert [s for _, s in es] == pytest.approx([s for _, s in faiss], abs=1e-5)


def test_hybrid_fuses_the_two_elasticsearch_rankings(searcher: Searcher, cluster: es_fake.FakeCluster) -> None:
    fused = searcher.retrieve("adam learning rate", 4, "hybrid", "elasticsearch")
    body = last_search(cluster)
    assert body[1]["size"] == body[3]["size"] == HYBRID_CANDIDATES
    index = searcher.backend("elasticsearch")
    dense, lexical = index.knn_and_match(searcher.embed_query("adam learning rate"), "adam learning rate",
                                         HYBRID_CANDIDATES)
    expected = fuse(searcher.fusion, [dense, lexical])  # the index's fusion, client side, on the two lists
    assert searcher.fusion.methods == ("dense", "bm25") and fused == expected[:4]


@pytest.mark.parametrize("method", ["dense", "bm25", "hybrid"])
def test_tag_filters_go_into_the_queries(searcher: Searcher, cluster: es_fake.FakeCluster, method: str) -> None:
    hits = searcher.search("training sample", k=10, method=method, backend="elasticsearch", tags=["drift"]).hits
    assert hits and {h.doc_id for h in hits} == {"drift"}
    body = last_search(cluster)
    for search in body[1::2]:
        clauses = search["knn"]["filter"] if "knn" in search else search["query"]["bool"]["filter"]
        assert clauses == [{"terms": {"tags": ["drift"]}}]


def test_lsi_is_still_local(searcher: Searcher, cluster: es_fake.FakeCluster) -> None:
    before = len(cluster.requests)
    result = searcher.search(QUERY, k=3, method="lsi", backend="elasticsearch")
    assert result.backend == "lsi" and result.hits[0].doc_id == "drift"
    assert len(cluster.requests) == before


def test_unreachable_cluster_fails_elasticsearch_while_faiss_answers(
    searcher: Searcher, es_settings: Settings, fake_encoder: HashingEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # from here on the real client and network stack
    down = updated_settings(
        es_settings, elasticsearch_url="http://127.0.0.1:9", elasticsearch_timeout=1.0, elasticsearch_max_retries=0
    )
    offline = Searcher.open(down.index_dir, search_config(down), encoder=fake_encoder)
    for method in ("dense", "bm25", "hybrid"):
        with pytest.raises(BackendUnavailableError) as caught:
            offline.search(QUERY, k=3, method=method, backend="elasticsearch")
        assert caught.value.backend == "elasticsearch"
        assert "http://127.0.0.1:9" in str(caught.value) and "Connection refused" in str(caught.value)
    assert offline.search(QUERY, k=3, method="dense", backend="faiss").hits[0].doc_id == "drift"
    assert offline.search(QUERY, k=3, method="hybrid", backend="faiss").hits


def test_feedback_refines_the_elasticsearch_dense_list_with_the_filter_and_keeps_its_bm25(
    searcher: Searcher, cluster: es_fake.FakeCluster
) -> None:
    from indexing.backends.elasticsearch_index import ElasticsearchIndex
    from mlsearch.configs import DEFAULT_FEEDBACK
    from search.feedback import rocchio, with_first_pass

    query = "training sample"
    before = len(cluster.calls("POST", r"/mlsearch-.*/_msearch"))
    fused = searcher.retrieve(query, 10, "hybrid", "elasticsearch", tags=["drift"], feedback=DEFAULT_FEEDBACK)
    first, second = (call.body for call in cluster.calls("POST", r"/mlsearch-.*/_msearch")[before:])
    assert [sorted(line) for line in first[1::2]] == [["_source", "knn", "size"], ["_source", "query", "size"]]
    assert [sorted(line) for line in second[1::2]] == [["_source", "knn", "size"]]  # BM25 in ES: not expanded
    assert second[1]["knn"]["filter"] == [{"terms": {"tags": ["drift"]}}]
    index = searcher.backend("elasticsearch")
    assert isinstance(index, ElasticsearchIndex)
    dense, lexical = index.knn_and_match(searcher.embed_query(query), query, HYBRID_CANDIDATES, ["drift"])
    chosen = [p for p, _ in fuse(searcher.fusion, [dense, lexical])[: DEFAULT_FEEDBACK.docs]]
    moved = rocchio(searcher.embed_query(query), searcher.feedback_vectors("elasticsearch", chosen),
                    DEFAULT_FEEDBACK.query_weight)
    np.testing.assert_allclose(second[1]["knn"]["query_vector"], moved, atol=1e-5)
    refined = index.knn(moved, HYBRID_CANDIDATES, ["drift"])
    assert fused == fuse(with_first_pass(searcher.fusion), [dense, lexical, refined, lexical])[:10]
    assert {searcher.store.get([p])[p].doc_id for p, _ in fused} == {"drift"}
