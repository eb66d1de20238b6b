"""The comparison page's files and ``GET /tags`` (no browser: see test_page_browser.py for the page at work)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import STATIC_DIR
from indexing.layout import current_version_dir
from indexing.store import ChunkStore


def test_the_page_is_served_at_the_root_with_one_column_per_method(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    methods = re.findall(r'<section class="column" data-method="(\w+)"', page.text)
    assert methods == ["lsi", "bm25", "dense", "hybrid", "reranked"]
    # the reranked column stays hidden until GET /index names a reranker
    assert re.search(r'<section class="column" data-method="reranked"[^>]*\bhidden\b', page.text)
    for control in ("q", "k"):
        assert f'<label for="{control}">' in page.text and f'id="{control}"' in page.text
    assert 'role="alert"' in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        assert client.get(asset).status_code == 200


def test_every_asset_comes_from_the_app_so_the_page_works_offline() -> None:
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"https?://|[\s\"'(]//[\w.-]+\.[a-z]{2,}/|@import|\burl\(", text), path.name
    page = (STATIC_DIR / "index.html").read_text()
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(re.match(r"/(?!/)|data:", link) for link in links), links


def test_the_script_never_puts_text_into_the_page_as_html() -> None:
    script = (STATIC_DIR / "app.js").read_text()
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", script)


def test_tags_lists_the_distinct_tags_of_the_index(client: TestClient, built_index: Path) -> None:
    response = client.get("/tags")
    assert response.status_code == 200
    assert response.json() == {"tags": ["deep-learning", "drift", "mlops", "training"]}
    store = ChunkStore(current_version_dir(built_index) / ChunkStore.FILE)
    assert store.tags() == sorted({tag for chunk in store for tag in chunk.tags})


def test_the_page_skips_the_keyword_analyzers_stop_words_when_highlighting() -> None:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    script = (STATIC_DIR / "app.js").read_text()
    block = script[script.index("const STOP_WORDS") : script.index(').split(" ")')]
    words = "".join(re.findall(r'"([^"]*)"', block)).split()
    assert set(words) == set(ENGLISH_STOP_WORDS)
