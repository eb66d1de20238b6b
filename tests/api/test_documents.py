"""The /documents API: writes are durable, become searchable in the version they name, and bad input is refused."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mlsearch.settings import Settings
from tests.api.conftest import ADMIN_KEY, wait_ready, wait_until
from tests.documents_fixtures import HTML_PAGE, PDF_PAGES, make_encrypted_pdf, make_notebook, make_pdf

KEY = {"X-API-Key": ADMIN_KEY}


def _search(client: TestClient, query: str, method: str = "bm25", k: int = 3) -> list[dict]:  # type: ignore[type-arg]
    response = client.post("/search", json={"query": query, "method": method, "k": k})
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def _wait_indexed(client: TestClient, doc_id: str) -> dict:  # type: ignore[type-arg]
    wait_until(lambda: client.get(f"/documents/{doc_id}", headers=KEY).json().get("indexed") is True,
               what=f"{doc_id} indexed")
    return dict(client.get(f"/documents/{doc_id}", headers=KEY).json())


def test_put_is_searchable_in_the_version_it_names(client: TestClient) -> None:
    body = {"title": "Label smoothing", "text": "Label smoothing replaces one-hot targets with soft targets.",
            "tags": ["Training"], "format": "markdown"}
    response = client.put("/documents/label-smoothing", json=body, headers=KEY)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["doc_id"] == "label-smoothing" and answer["seq"] >= 1
    assert answer["visible_in_version"] != answer["current_version"]
    info = _wait_indexed(client, "label-smoothing")
    assert info == {"doc_id": "label-smoothing", "title": "Label smoothing", "source_type": "markdown",
                    "chunks": 1, "indexed": True, "pending": None, "seq": answer["seq"]}
    wait_until(lambda: client.get("/index").json()["version"] == answer["visible_in_version"], what="reload")
    hit = _search(client, "soft targets label smoothing")[0]
    assert hit["doc_id"] == "label-smoothing" and hit["title"] == "Label smoothing"
    tagged = client.post("/search", json={"query": "targets", "method": "bm25", "filters": {"tags": ["training"]}})
    assert "label-smoothing" in {h["doc_id"] for h in tagged.json()["results"]}


def test_uploads_of_pdf_html_and_notebook_are_found_with_page_cell_and_url(client: TestClient) -> None:
    files = {
        "paper": ("paper.pdf", make_pdf(PDF_PAGES), "application/pdf"),
        "page": ("page.html", HTML_PAGE.encode(), "text/html"),
        "kmeans": ("kmeans.ipynb", make_notebook(), "application/x-ipynb+json"),
    }
    for doc_id, upload in files.items():
        response = client.post("/documents", files={"file": upload}, data={"tags": "papers, ml"}, headers=KEY)
        assert response.status_code == 202, response.text
        assert response.json()["doc_id"] == doc_id
    notes = client.post("/documents", files={"file": files["paper"]}, headers=KEY).json()["notes"]
    assert notes == ["page 2 has no text layer (a scanned image?); not indexed"]
    for doc_id in files:
        _wait_indexed(client, doc_id)
    wait_until(lambda: "kmeans" in {h["doc_id"] for h in _search(client, "elbow method inertia", k=5)}, what="reload")
    hit = _search(client, "sine cosine positional encodings")[0]
    assert (hit["doc_id"], hit["source_type"], hit["page"]) == ("paper", "pdf", 3)
    hit = _search(client, "elbow method inertia clusters")[0]
    assert (hit["doc_id"], hit["source_type"], hit["cell"]) == ("kmeans", "notebook", 2)
    hit = _search(client, "clip_grad_norm_ optimizer step")[0]
    assert (hit["doc_id"], hit["url"]) == ("page", "https://example.org/gradient-clipping")
    listing = client.get("/documents", params={"limit": 2, "offset": 0}, headers=KEY).json()
    assert listing["total"] == 7 and len(listing["documents"]) == 2
    everything = client.get("/documents", params={"limit": 100}, headers=KEY).json()["documents"]
    by_id = {d["doc_id"]: d for d in everything}
    assert by_id["paper"]["source_type"] == "pdf" and by_id["paper"]["chunks"] >= 2
    assert by_id["dropout"]["indexed"] and by_id["dropout"]["seq"] is None


def test_delete_removes_from_search_and_unknown_is_404(client: TestClient) -> None:
    assert client.delete("/documents/nope", headers=KEY).status_code == 404
    response = client.delete("/documents/dropout", headers=KEY)
    assert response.status_code == 202 and response.json()["deleted"] is True
    version = response.json()["visible_in_version"]
    wait_until(lambda: client.get("/index").json()["version"] == version, what="reload")
    assert "dropout" not in {h["doc_id"] for h in _search(client, "dropout rate hidden layers", k=10)}
    assert client.get("/documents/dropout", headers=KEY).status_code == 404


@pytest.mark.parametrize(
    ("upload", "status", "message"),
    [
        (("image.png", b"\x89PNG\r\n", "image/png"), 415, "unsupported file type"),
        (("secret.pdf", None, "application/pdf"), 422, "encrypted"),
        (("broken.pdf", b"%PDF-1.4\n1 0 obj << /Pages 9 0 R >> junk", "application/pdf"), 422, "corrupt"),
        (("nb.ipynb", b'{"cells": [', "application/json"), 422, "nb.ipynb"),
        (("blank.md", b"\n\n  \n", "text/markdown"), 422, "nothing to index"),
    ],
)
def test_bad_uploads_are_refused_and_the_index_is_unchanged(
    client: TestClient, upload: tuple[str, bytes | None, str], status: int, message: str
) -> None:
    name, data, kind = upload
    before = client.get("/documents", headers=KEY).json()
    response = client.post("/documents", files={"file": (name, data or make_encrypted_pdf(), kind)}, headers=KEY)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"] and name in response.json()["detail"]
    assert client.get("/documents", headers=KEY).json() == before


@pytest.mark.parametrize("doc_id", ["a..b", "a%2Fb", "a%5Cb", "bad%01id"])
def test_unsafe_doc_ids_are_422(client: TestClient, doc_id: str) -> None:
    response = client.put(f"/documents/{doc_id}", json={"text": "x"}, headers=KEY)
    assert response.status_code in (404, 422), response.text  # an encoded '/' may not even reach the route
    if response.status_code == 404:
        assert response.json()["error"] == "not_found"
    else:
        assert response.json()["error"] == "bad_document"
    form = client.post("/documents", files={"file": ("x.md", b"# X\n\nbody", "text/markdown")},
                       data={"doc_id": "../etc/passwd"}, headers=KEY)
    assert form.status_code == 422 and "path separator" in form.json()["detail"]


def test_admin_key_is_required_as_for_reload(
    built_index: Path, api_settings: Settings, make_app: Callable[..., FastAPI], client: TestClient
) -> None:
    assert client.put("/documents/x", json={"text": "x"}).status_code == 401
    assert client.put("/documents/x", json={"text": "x"}, headers={"X-API-Key": "wrong"}).status_code == 403
    assert client.get("/documents").status_code == 401
    with TestClient(make_app(api_settings, admin_api_key=None)) as no_key:
        wait_ready(no_key)
        assert no_key.delete("/documents/dropout", headers=KEY).status_code == 403


def test_uploads_over_the_limit_are_413(
    built_index: Path, api_settings: Settings, make_app: Callable[..., FastAPI]
) -> None:
    with TestClient(make_app(api_settings, max_upload_bytes=2048)) as small:
        wait_ready(small)
        big = b"# Big\n\n" + b"word " * 1000
        response = small.post("/documents", files={"file": ("big.md", big, "text/markdown")}, headers=KEY)
        assert response.status_code == 413
        assert response.json()["error"] == "body_too_large" and "big.md" in response.json()["detail"]
        assert "2048" in response.json()["detail"]
        huge = small.post("/documents", files={"file": ("huge.md", big * 40, "text/markdown")}, headers=KEY)
        assert huge.status_code == 413  # refused by the body limit before it is read
        ok = small.put("/documents/small", json={"text": "a small note"}, headers=KEY)
        assert ok.status_code == 202  # bigger than nothing, within the upload limit


def test_a_shutdown_during_an_update_lets_it_reload_and_leaves_no_updater_thread(
    built_index: Path, api_settings: Settings, make_app: Callable[..., FastAPI]
) -> None:
    with TestClient(make_app(api_settings)) as client:
        wait_ready(client)
        assert client.put("/documents/late", json={"text": "a note written just before shutdown"},
                          headers=KEY).status_code == 202
    # stopping the updater on the event loop left it waiting for a reload that the loop could not run
    assert not [t for t in threading.enumerate() if t.name == "mlsearch-updater" and t.is_alive()]


def test_a_bad_json_body_is_422(client: TestClient) -> None:
    response = client.put("/documents/x", json={"text": "x", "format": "pdf"}, headers=KEY)
    assert response.status_code == 422 and response.json()["error"] == "validation_error"
    assert client.put("/documents/x", json={"text": "   "}, headers=KEY).status_code == 422
