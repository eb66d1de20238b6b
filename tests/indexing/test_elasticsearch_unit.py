"""Elasticsearch backend without a server: the mapping, query bodies, bulk failures and the blue-green swap.

Pure body builders are checked directly. Everything that talks to a cluster runs through the real
``elasticsearch`` client with :class:`tests.indexing.es_fake.FakeNode` as its transport node, so the assertions
are on the HTTP requests the client really sends. The unreachable-cluster tests use the real network stack
against a closed loopback port.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from indexing.backends import elasticsearch_queries as q
from indexing.backends.configs import backend_config
from indexing.backends.elasticsearch_index import ElasticsearchConfig, ElasticsearchIndex, client_options, redact
from indexing.backends.registry import vector_backend
from indexing.chunks import Chunk
from mlsearch.errors import BackendUnavailableError, IndexNotBuiltError
from mlsearch.settings import Settings
from tests.fakes import HashingEncoder
from tests.indexing import es_fake
from tests.indexing.conformance import check_backend, clustered_vectors

URL = "http://es.test:9200"
UNREACHABLE = "http://127.0.0.1:9"  # a closed loopback port: connection refused at once


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> es_fake.FakeCluster:
    return es_fake.install(monkeypatch)


def _config(settings: Settings) -> ElasticsearchConfig:
    config = backend_config("elasticsearch", settings)
    assert isinstance(config, ElasticsearchConfig)
    return config


def es_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "elasticsearch_url": URL, "elasticsearch_initial_backoff": 0.0, "elasticsearch_max_retries": 2,
        "elasticsearch_bulk_size": 4,
    }
    values.update(overrides)
    return Settings.model_validate(values)


def make_chunks(n: int) -> list[Chunk]:
    tags = [("training",), ("drift", "mlops"), ()]
    return [
        Chunk(id=f"chunk{i:03d}", doc_id=f"doc{i % 3}", title=f"Title {i % 3}", heading=f"Section {i}",
              text=f"passage {i} about {'dropout' if i % 2 else 'momentum'}", position=i, tokens=10,
              tags=tags[i % 3])
        for i in range(n)
    ]


def build(settings: Settings, n: int = 10, directory: Path | None = None) -> ElasticsearchIndex:
    chunks = make_chunks(n)
    vectors = HashingEncoder().encode([c.embedding_text for c in chunks])
    index = ElasticsearchIndex(64, _config(settings))
    index.add(vectors[:7], chunks[:7])
    index.add(vectors[7:], chunks[7:])
    if directory is not None:
        index.save(directory)
    return index


# -- pure bodies ----------------------------------------------------------------------------------------
def test_registry_names_the_backend() -> None:
    assert vector_backend("elasticsearch") is ElasticsearchIndex


def test_mapping_has_text_metadata_and_an_indexed_dense_vector() -> None:
    body = q.index_body(384, "dot_product", "int8_hnsw", shards=2, replicas=1, meta={"state": "building"})
    assert body["settings"] == {"number_of_shards": 2, "number_of_replicas": 1, "refresh_interval": "-1"}
    mappings = body["mappings"]
    assert mappings["dynamic"] == "strict" and mappings["_meta"] == {"mlsearch": {"state": "building"}}
    props = mappings["properties"]
    assert props["text"]["type"] == "text" and props["text"]["analyzer"] == "english"
    for name in ("doc_id", "title", "heading", "tags", "chunk_id"):
        assert props[name]["type"] == "keyword", name
    assert props["position"] == {"type": "integer"}
    assert props["embedding"] == {
        "type": "dense_vector", "dims": 384, "index": True, "similarity": "dot_product",
        "index_options": {"type": "int8_hnsw", "rescore_vector": {"oversample": 3.0}},
    }
    assert q.index_body(8, "dot_product", "hnsw")["mappings"]["properties"]["embedding"]["index_options"] == {
        "type": "hnsw"
    }
    # BM25 runs on title + heading + passage, as the local BM25 does
    assert props["content"]["analyzer"] == "english"
    assert all(props[f]["copy_to"] == "content" for f in ("title", "heading", "text"))
    assert q.index_body(8, "max_inner_product")["mappings"]["properties"]["embedding"]["similarity"] == (
        "max_inner_product"
    )
    with pytest.raises(ValueError, match="similarity"):
        q.index_body(8, "cosine")


def test_similarity_follows_the_vectors_norms() -> None:
    normalized = HashingEncoder().encode(["dropout", "adam optimizer", "drift"])
    assert q.similarity_for(normalized) == "dot_product"
    assert q.similarity_for(normalized * 3.0) == "max_inner_product"
    assert q.similarity_for(clustered_vectors(20, 8)) == "max_inner_product"
    assert q.similarity_for(np.zeros((0, 8), np.float32)) == "max_inner_product"


def test_knn_body_with_and_without_tag_filter() -> None:
    vector = np.array([0.5, -0.25, 1.0], np.float32)
    body = q.knn_body(vector, 10, 100)
    assert body == {
        "knn": {"field": "embedding", "query_vector": [0.5, -0.25, 1.0], "k": 10, "num_candidates": 100},
        "size": 10, "_source": ["position", "chunk_id"],
    }
    filtered = q.knn_body(vector, 10, 100, tags=["Drift", "mlops", "drift"])
    assert filtered["knn"]["filter"] == [{"terms": {"tags": ["drift", "mlops"]}}]
    assert q.knn_body(vector, 500, 100)["knn"]["num_candidates"] == 500  # never below k
    assert q.knn_body(vector, 1000, 50_000)["knn"]["num_candidates"] == 10_000  # Elasticsearch's limit


def test_match_body_with_and_without_tag_filter() -> None:
    assert q.match_body("adam learning rate", 5) == {
        "query": {"match": {"content": {"query": "adam learning rate"}}},
        "size": 5, "_source": ["position", "chunk_id"],
    }
    assert q.match_body("adam", 5, tags=["training"])["query"] == {
        "bool": {"must": [{"match": {"content": {"query": "adam"}}}], "filter": [{"terms": {"tags": ["training"]}}]}
    }
    assert "bool" not in q.match_body("adam", 5, tags=[])["query"]


def test_hybrid_sends_knn_and_match_with_the_same_filter() -> None:
    lines = q.hybrid_searches(np.ones(3, np.float32), "drift test", 100, 50, tags=["drift"])
    assert lines[0] == {} and lines[2] == {}
    assert lines[1] == q.knn_body(np.ones(3, np.float32), 100, 50, ["drift"])
    assert lines[3] == q.match_body("drift test", 100, ["drift"])
    assert lines[1]["knn"]["filter"] == lines[3]["query"]["bool"]["filter"]


def test_alias_actions_remove_every_old_index_and_add_the_new_one() -> None:
    assert q.alias_actions("mlsearch", "mlsearch-2", []) == [{"add": {"index": "mlsearch-2", "alias": "mlsearch"}}]
    assert q.alias_actions("mlsearch", "mlsearch-3", ["mlsearch-2", "mlsearch-1", "mlsearch-3"]) == [
        {"remove": {"index": "mlsearch-1", "alias": "mlsearch"}},
        {"remove": {"index": "mlsearch-2", "alias": "mlsearch"}},
        {"add": {"index": "mlsearch-3", "alias": "mlsearch"}},
    ]


@pytest.mark.parametrize("dot", [-7.5, -0.3, 0.0, 0.42, 12.0])
def test_scores_convert_back_to_inner_products(dot: float) -> None:
    mip = dot + 1.0 if dot >= 0 else 1.0 / (1.0 - dot)
    assert q.to_inner_product(mip, "max_inner_product") == pytest.approx(dot)
    if -1.0 <= dot <= 1.0:
        assert q.to_inner_product((1.0 + dot) / 2.0, "dot_product") == pytest.approx(dot)


def test_versions_to_delete_keeps_previous_and_newest_and_drops_leftovers() -> None:
    pattern = q.physical_pattern("mlsearch")
    name = lambda t: f"mlsearch-20250101t{t:012d}-abcdef01"  # noqa: E731
    states = {name(1): "complete", name(2): "complete", name(3): "building", name(4): "complete",
              name(6): "building", "mlsearch-logs": "unknown", name(5): "building"}
    # the alias moved from 4 to 5; keep 2: 5 (current) and 4 (previous); 3 is a killed build; 6 is newer (running)
    assert q.versions_to_delete(states, 2, name(5), [name(4)], pattern) == [name(1), name(2), name(3)]
    assert q.versions_to_delete(states, 3, name(5), [name(4)], pattern) == [name(1), name(3)]
    # a previous version is kept before newer complete ones that never served
    assert q.versions_to_delete(states, 2, name(5), [name(1)], pattern) == [name(2), name(3), name(4)]
    assert q.versions_to_delete(states, 1, name(5), [name(4)], pattern) == [name(1), name(2), name(3), name(4)]


def test_prefix_must_be_a_valid_index_name() -> None:
    assert q.check_prefix("mlsearch.v2_x-y") == "mlsearch.v2_x-y"
    for bad in ("MLSearch", "-x", "_x", "a b", "a*", ""):
        with pytest.raises(ValueError, match="elasticsearch_index_prefix"):
            q.check_prefix(bad)


# -- configuration --------------------------------------------------------------------------------------
def test_not_configured_names_the_setting() -> None:
    with pytest.raises(BackendUnavailableError, match="MLSEARCH_ELASTICSEARCH_URL"):
        ElasticsearchIndex(64, _config(Settings(elasticsearch_url=None)))


def test_client_options_carry_auth_tls_timeout_and_retries(tmp_path: Path) -> None:
    options = client_options(_config(es_settings(elasticsearch_api_key=SecretStr("abc"), elasticsearch_timeout=3.5)))
    assert options["api_key"] == "abc" and options["request_timeout"] == 3.5
    assert options["max_retries"] == 2 and options["retry_on_timeout"] is True
    assert 429 in options["retry_on_status"]
    options = client_options(
        _config(es_settings(elasticsearch_username="elastic", elasticsearch_password=SecretStr("pw")))
    )
    assert options["basic_auth"] == ("elastic", "pw") and "api_key" not in options
    ca = tmp_path / "ca.crt"
    ca.write_text("not checked here")
    assert client_options(_config(es_settings(elasticsearch_ca_certs=ca)))["ca_certs"] == str(ca)
    with pytest.raises(BackendUnavailableError, match="missing.crt not found"):
        client_options(_config(es_settings(elasticsearch_ca_certs=tmp_path / "missing.crt")))


def test_credentials_never_reach_messages_or_records() -> None:
    assert redact("https://elastic:secret@es.example:9243/base") == "https://es.example:9243/base"
    assert redact("http://localhost:9200") == "http://localhost:9200"


# -- build, swap, prune (through the real client) -----------------------------------------------------------
def test_build_sends_mapping_bulk_refresh_count_then_swap(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    index = build(es_settings(), n=10, directory=tmp_path / "es")
    name = index.index
    assert name is not None and q.physical_pattern("mlsearch").match(name)

    steps = [(r.method, r.path.replace(name, "<new>")) for r in cluster.requests]
    assert steps[0] == ("PUT", "/<new>")
    bulk_paths = [i for i, s in enumerate(steps) if s[1] == "/_bulk"]
    assert len(bulk_paths) == 3  # 7 then 3 documents in bulks of 4: 4+3, 3
    after = steps[bulk_paths[-1] + 1:]
    assert after[:5] == [("POST", "/<new>/_refresh"), ("POST", "/<new>/_count"), ("GET", "/_alias/mlsearch"),
                         ("POST", "/_aliases"), ("PUT", "/<new>/_mapping")]

    create = cluster.requests[0].body
    assert create["mappings"]["properties"]["embedding"]["dims"] == 64
    assert create["mappings"]["properties"]["embedding"]["similarity"] == "dot_product"  # unit vectors
    assert create["mappings"]["_meta"]["mlsearch"]["state"] == "building"

    lines = [line for r in cluster.calls("PUT", "/_bulk") for line in r.body]
    actions, sources = lines[::2], lines[1::2]
    assert [a["index"]["_id"] for a in actions] == [str(i) for i in range(10)]
    assert sources[3]["position"] == 3 and sources[3]["chunk_id"] == "chunk003"
    assert sources[4]["tags"] == ["drift", "mlops"] and sources[4]["heading"] == "Section 4"
    assert len(sources[0]["embedding"]) == 64

    (swap,) = cluster.calls("POST", "/_aliases")
    assert swap.body == {"actions": [{"add": {"index": name, "alias": "mlsearch"}}]}
    assert cluster.aliases == {"mlsearch": {name}}
    assert cluster.indices[name].mappings["_meta"]["mlsearch"]["state"] == "complete"

    record = json.loads((tmp_path / "es" / "elasticsearch.json").read_text())
    assert record["alias"] == "mlsearch" and record["index"] == name and record["url"] == URL
    assert record["count"] == 10 and record["similarity"] == "dot_product" and len(record["fingerprint"]) == 64
    assert record["mapping"] == {"vector_index": "hnsw", "analyzer": "english", "shards": 1, "replicas": 0}


def test_rebuild_moves_the_alias_in_one_request_and_prunes(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    settings = es_settings(elasticsearch_keep_versions=2)
    cluster.indices["mlsearch-logs"] = es_fake.FakeIndex(mappings={}, settings={})  # not ours: never touched
    first = build(settings, directory=tmp_path / "v1").index
    second = build(settings, directory=tmp_path / "v2").index
    swaps = cluster.calls("POST", "/_aliases")
    assert swaps[-1].body == {"actions": [{"remove": {"index": first, "alias": "mlsearch"}},
                                          {"add": {"index": second, "alias": "mlsearch"}}]}
    assert cluster.aliases == {"mlsearch": {second}}
    assert first in cluster.indices  # keep 2: the previous version stays for servers that still read it

    third = build(settings, directory=tmp_path / "v3").index
    assert cluster.aliases == {"mlsearch": {third}}
    assert first not in cluster.indices and {second, third, "mlsearch-logs"} <= set(cluster.indices)
    assert cluster.calls("DELETE", f"/{first}")

    # each local version keeps reading its own physical index, whatever the alias points to
    old = ElasticsearchIndex.load(tmp_path / "v2", _config(settings))
    assert old.index == second and len(old) == 10


def test_a_killed_build_is_cleaned_up_by_the_next_one(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    settings = es_settings()
    build(settings, directory=tmp_path / "v1")
    abandoned = build(settings).index  # added, never saved: as if the process died
    current = build(settings, directory=tmp_path / "v3").index
    assert abandoned not in cluster.indices and current in cluster.indices


def test_bulk_retries_429_with_backoff_then_succeeds(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    cluster.bulk_status = lambda doc_id, attempt: 429 if doc_id in {"2", "5"} and attempt == 1 else None
    index = build(es_settings(), n=8, directory=tmp_path / "es")
    assert len(index) == 8 and cluster.aliases == {"mlsearch": {index.index}}
    retried = [line for r in cluster.calls("PUT", "/_bulk")[1:] for line in r.body[::2]]
    assert {"2", "5"} <= {a["index"]["_id"] for a in retried}
    assert len(cluster.indices[str(index.index)].docs) == 8


def test_lost_documents_fail_the_build_and_leave_the_alias(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    settings = es_settings()
    previous = build(settings, directory=tmp_path / "v1").index
    cluster.bulk_status = lambda doc_id, attempt: 400 if doc_id in {"1", "4", "6"} else None
    with pytest.raises(BackendUnavailableError) as caught:
        build(settings, directory=tmp_path / "v2")
    message = str(caught.value)
    assert "3 of 7 documents failed" in message and URL in message and "\n" not in message
    assert cluster.aliases == {"mlsearch": {previous}} and set(cluster.indices) == {previous}
    assert not (tmp_path / "v2").exists()


def test_persistent_429_fails_after_the_retries(cluster: es_fake.FakeCluster) -> None:
    cluster.bulk_status = lambda doc_id, attempt: 429 if doc_id == "3" else None
    with pytest.raises(BackendUnavailableError, match=r"1 of 7 documents failed .*HTTP 429"):
        build(es_settings(elasticsearch_max_retries=2), n=7)
    attempts = [a["index"]["_id"] for r in cluster.calls("PUT", "/_bulk") for a in r.body[::2]].count("3")
    assert attempts == 3  # the first try and two retries
    assert cluster.indices == {}


def test_count_mismatch_refuses_the_swap(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    cluster.overrides.append(lambda r: (200, {"count": 9}) if r.path.endswith("/_count") else None)
    with pytest.raises(BackendUnavailableError, match="holds 9 documents instead of 10"):
        build(es_settings(), n=10, directory=tmp_path / "es")
    assert cluster.aliases == {} and cluster.indices == {} and not cluster.calls("POST", "/_aliases")


def test_a_failed_swap_deletes_the_new_index(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    previous = build(es_settings(), directory=tmp_path / "v1").index
    cluster.overrides.append(
        lambda r: (500, {"error": {"type": "boom", "reason": "disk full"}, "status": 500})
        if r.path == "/_aliases" else None
    )
    with pytest.raises(BackendUnavailableError, match="HTTP 500 boom: disk full"):
        build(es_settings(elasticsearch_max_retries=0), directory=tmp_path / "v2")
    assert cluster.aliases == {"mlsearch": {previous}} and set(cluster.indices) == {previous}


def test_unnormalized_vectors_get_max_inner_product(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    index = ElasticsearchIndex(8, _config(es_settings()))
    vectors = clustered_vectors(12, 8)
    index.add(vectors, [])
    assert index.similarity == "max_inner_product"
    assert cluster.requests[0].body["mappings"]["properties"]["embedding"]["similarity"] == "max_inner_product"
    normalized = ElasticsearchIndex(8, _config(es_settings()))
    normalized.add(vectors[:3] / np.linalg.norm(vectors[:3], axis=1, keepdims=True), [])
    with pytest.raises(ValueError, match="unit-length"):
        normalized.add(vectors[3:6], [])


def test_bad_input_is_refused_before_any_request(cluster: es_fake.FakeCluster) -> None:
    index = ElasticsearchIndex(8, _config(es_settings()))
    with pytest.raises(ValueError, match=r"shape \(n, 8\)"):
        index.add(np.zeros((2, 5), np.float32), [])
    with pytest.raises(ValueError, match="2 vectors but 1 chunks"):
        index.add(np.ones((2, 8), np.float32), make_chunks(1))
    assert cluster.requests == []


def test_conformance_suite_runs_through_the_client(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    """The shared conformance suite, here checking batching, score conversion, padding and save → load.

    Scores come from the fake node's exact kNN, so this is not a recall test of Elasticsearch's HNSW; the
    integration test runs the same suite against a real cluster.
    """
    result = check_backend(ElasticsearchIndex, es_settings(elasticsearch_bulk_size=500), tmp_path, 1.0)
    assert result["recall@10"] == 1.0
    searches = cluster.calls("POST", r"/mlsearch-.*/_msearch")
    assert searches and all(len(r.body) <= 2 * ElasticsearchIndex.QUERIES_PER_REQUEST for r in searches)


# -- searching --------------------------------------------------------------------------------------------
def test_knn_match_and_hybrid_requests_carry_the_filters(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    index = build(es_settings(elasticsearch_num_candidates=40), n=12, directory=tmp_path / "es")
    vector = HashingEncoder().encode(["dropout"])[0]
    before = len(cluster.requests)

    hits = index.knn(vector, 3, tags=["drift"])
    (request,) = cluster.requests[before:]
    assert request.path == f"/{index.index}/_msearch"
    assert request.body[1]["knn"]["filter"] == [{"terms": {"tags": ["drift"]}}]
    assert request.body[1]["knn"]["num_candidates"] == 40 and request.body[1]["size"] == 3
    assert hits and all(position % 3 == 1 for position, _ in hits)  # chunks 1, 4, 7, 10 carry "drift"

    hits = index.match("dropout passage", 5, tags=["training"])
    assert cluster.requests[-1].body[1] == q.match_body("dropout passage", 5, ["training"])
    assert hits and all(position % 3 == 0 for position, _ in hits)

    dense, lexical = index.knn_and_match(vector, "dropout", 100)
    request = cluster.requests[-1]
    assert [sorted(line) for line in request.body] == [[], ["_source", "knn", "size"], [], ["_source", "query", "size"]]
    assert len(dense) == 12 and {p for p, _ in lexical} == {1, 3, 5, 7, 9, 11}


def test_dense_scores_are_raw_inner_products(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    chunks = make_chunks(6)
    vectors = HashingEncoder().encode([c.embedding_text for c in chunks])
    index = ElasticsearchIndex(64, _config(es_settings()))
    index.add(vectors, chunks)
    index.save(tmp_path)
    query = HashingEncoder().encode(["momentum passage"])[0]
    ranked = index.knn(query, 6)
    expected = vectors @ query
    for position, score in ranked:
        assert score == pytest.approx(float(expected[position]), abs=1e-5)
    assert [p for p, _ in ranked] == [int(i) for i in np.argsort(-expected, kind="stable")]


def test_load_needs_the_record_and_the_physical_index(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    with pytest.raises(IndexNotBuiltError):
        ElasticsearchIndex.load(tmp_path / "nothing", _config(es_settings()))
    index = build(es_settings(), directory=tmp_path / "es")
    loaded = ElasticsearchIndex.load(tmp_path / "es", _config(es_settings()))
    assert loaded.describe() == index.describe()
    with pytest.raises(RuntimeError, match="published version"):
        loaded.add(np.ones((1, 64), np.float32), [])
    del cluster.indices[str(index.index)]
    cluster.aliases.clear()
    with pytest.raises(BackendUnavailableError, match="no longer exists"):
        ElasticsearchIndex.load(tmp_path / "es", _config(es_settings()))


def test_the_recorded_url_is_used_when_the_settings_name_none(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    build(es_settings(), directory=tmp_path / "es")
    loaded = ElasticsearchIndex.load(tmp_path / "es", _config(Settings(elasticsearch_url=None)))
    assert loaded.url == URL


# -- unreachable cluster (real network stack, closed port) -----------------------------------------------------
def test_unreachable_cluster_fails_the_save_with_url_and_cause() -> None:
    settings = Settings(elasticsearch_url=UNREACHABLE, elasticsearch_timeout=1, elasticsearch_max_retries=0)
    index = ElasticsearchIndex(4, _config(settings))
    with pytest.raises(BackendUnavailableError) as caught:
        index.add(np.eye(4, dtype=np.float32), [])
    message = str(caught.value)
    assert UNREACHABLE in message and "Connection refused" in message and "\n" not in message


def test_unreachable_cluster_fails_the_load(tmp_path: Path) -> None:
    record = {"url": UNREACHABLE, "alias": "mlsearch", "index": "mlsearch-x", "dimension": 4,
              "similarity": "dot_product", "count": 3}
    (tmp_path / "elasticsearch.json").write_text(json.dumps(record))
    settings = Settings(elasticsearch_url=None, elasticsearch_timeout=1, elasticsearch_max_retries=0)
    with pytest.raises(BackendUnavailableError, match=r"http://127\.0\.0\.1:9 is unreachable: Connection refused"):
        ElasticsearchIndex.load(tmp_path, _config(settings))


def test_searches_fail_fast_with_at_most_one_retry(cluster: es_fake.FakeCluster, tmp_path: Path) -> None:
    index = build(es_settings(elasticsearch_max_retries=3), directory=tmp_path / "es")
    busy = {"error": {"type": "unavailable", "reason": "node is busy"}, "status": 503}
    cluster.overrides.append(lambda r: (503, busy) if r.path.endswith("/_msearch") else None)
    with pytest.raises(BackendUnavailableError, match=r"answered HTTP 503 unavailable: node is busy \(while searching"):
        index.match("dropout", 3)
    assert len(cluster.calls("POST", r".*/_msearch")) == 2
