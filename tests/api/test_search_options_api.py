"""POST /search and /compare with offset, group_by and the new filters."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_offset_group_by_and_filters_over_http(client: TestClient) -> None:
    query = {"query": "training dropout gradient drift", "method": "bm25"}
    whole = client.post("/search", json={**query, "k": 4}).json()["results"]
    second = client.post("/search", json={**query, "k": 2, "offset": 2}).json()["results"]
    assert [h["id"] for h in second] == [h["id"] for h in whole[2:4]] and second[0]["rank"] == 3
    grouped = client.post("/search", json={**query, "k": 10, "group_by": "document"}).json()["results"]
    assert len({h["doc_id"] for h in grouped}) == len(grouped)
    assert all(isinstance(h["other_matches"], int) for h in grouped)
    only = client.post("/search", json={**query, "k": 10, "filters": {"doc_ids": ["dropout"]}}).json()["results"]
    assert only and {h["doc_id"] for h in only} == {"dropout"}
    text = client.post("/search", json={**query, "k": 10, "filters": {"source_types": ["text"]}}).json()
    assert {h["source_type"] for h in text["results"]} <= {"text"}
    compared = client.post("/compare", json={"query": query["query"], "methods": ["bm25", "dense"],
                                             "group_by": "document"}).json()
    for run in compared["runs"].values():
        assert len({h["doc_id"] for h in run["results"]}) == len(run["results"])


def test_bad_options_are_422(client: TestClient) -> None:
    assert client.post("/search", json={"query": "x", "group_by": "title"}).status_code == 422
    assert client.post("/search", json={"query": "x", "offset": -1}).status_code == 422
    assert client.post("/search", json={"query": "x", "filters": {"source_types": ["docx"]}}).status_code == 422
