"""The comparison page in a real browser: Debian's chromium driven by Playwright, against the real app.

The app runs with uvicorn on a free loopback port, over the tiny corpus built with the fake encoder. Every
test saves a screenshot under ``test-artifacts/browser/``. The tests skip when /usr/bin/chromium is missing
(``.ci/install`` installs it); nothing here ever downloads a browser.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from indexing.backends.configs import build_config
from indexing.build import build_index
from mlsearch.errors import BackendUnavailableError
from mlsearch.settings import Settings
from tests.api.conftest import service_state, wait_until
from tests.conftest import ROOT
from tests.fakes import HashingEncoder

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
METHODS = ["lsi", "bm25", "dense", "hybrid"]
LABELS = {"lsi": "LSI", "bm25": "BM25", "dense": "Dense", "hybrid": "Hybrid"}


class LiveServer:
    """The app served by uvicorn in a background thread, on a loopback socket bound before it starts."""

    def __init__(self, app: FastAPI) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        host, port = self.socket.getsockname()
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def start(self, ready: bool = True) -> LiveServer:
        """Start serving; with ``ready``, wait until the index is loaded."""
        self.thread.start()
        wait_until(lambda: self.server.started, what="uvicorn to start")
        if ready:
            wait_until(lambda: httpx.get(f"{self.url}/ready").status_code == 200, what="/ready")
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium (skips when it is not installed)."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (.ci/install installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., LiveServer]]:
    """Serve an app on loopback for the browser; every server is stopped after the test."""
    servers: list[LiveServer] = []

    def start(app: FastAPI, ready: bool = True) -> LiveServer:
        server = LiveServer(app)
        servers.append(server)
        return server.start(ready=ready)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live(app: FastAPI, serve: Callable[..., LiveServer]) -> LiveServer:
    """The app over the tiny index, served and ready."""
    return serve(app)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page; uncaught JavaScript errors are collected in ``page.js_errors``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.js_errors = []
    tab.on("pageerror", lambda error: tab.js_errors.append(str(error)))
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def finish(page: Any, name: str) -> None:
    """Save the screenshot artifact and check that the page threw no JavaScript error."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert page.js_errors == []


def expect(target: Any) -> Any:
    """Playwright's auto-waiting assertions."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def api_compare(live: LiveServer, query: str, k: int = 10, tags: list[str] | None = None) -> dict[str, Any]:
    """What ``POST /compare`` answers for the page's request (the expected columns)."""
    body: dict[str, Any] = {"query": query, "k": k, "methods": METHODS}
    if tags:
        body["filters"] = {"tags": tags}
    response = httpx.post(f"{live.url}/compare", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def column_ids(page: Any, method: str) -> list[str]:
    """The chunk ids shown in one column, top to bottom."""
    return page.locator(f'.column[data-method="{method}"] li.result').evaluate_all(
        "items => items.map(item => item.dataset.chunkId)"
    )


def expect_columns(page: Any, expected: dict[str, Any], methods: list[str] = METHODS) -> None:
    """Each column shows exactly the API's results for its method, in order."""
    for method in methods:
        ids = [hit["id"] for hit in expected["runs"][method]["results"]]
        assert ids, f"the API found nothing for {method}; pick another query"
        expect(page.locator(f'.column[data-method="{method}"] li.result')).to_have_count(len(ids))
        assert column_ids(page, method) == ids


def visible_markdown(snippet: str) -> str:
    """What a person should read of a snippet once its Markdown is rendered: the markers gone, the words kept."""
    text = re.sub(r"```(?:python|bash|json|yaml)?", "", snippet)
    text = re.sub(r"\*\*([^*\n]+)\*\*", r"\1", text)
    text = re.sub(r"`([^`\n]+)`", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*\n]*?)\*(?![\w*])", r"\1", text)
    return re.sub(r"(?<![\w_])_([^_\s][^_\n]*?)_(?![\w_])", r"\1", text)


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_typing_a_query_and_pressing_enter_fills_all_four_columns(page: Any, live: LiveServer) -> None:
    query = "dropout rate during training"
    page.goto(live.url)
    expect(page.locator("#tag-list input[type=checkbox]")).to_have_count(4)
    page.get_by_label("Query").fill(query)
    page.get_by_label("Query").press("Enter")

    expected = api_compare(live, query)
    expect_columns(page, expected)
    for method in METHODS:
        col = page.locator(f'.column[data-method="{method}"]')
        expect(col.locator("h2")).to_have_text(LABELS[method])
        expect(col.locator('[data-role="latency"]')).to_have_text(re.compile(r"^\d+(\.\d)? ms$"))
        first = col.locator("li.result").first
        hit = expected["runs"][method]["results"][0]
        expect(first.locator(".rank")).to_have_text("1")
        expect(first.locator(".title")).to_have_text(hit["title"])
        if hit["heading"]:
            expect(first.locator(".heading")).to_have_text(hit["heading"].replace(" > ", " › "))
        else:
            expect(first.locator(".heading")).to_have_count(0)
        assert _squash(first.locator(".snippet").inner_text()) == _squash(visible_markdown(hit["snippet"]))
    marks = page.locator('.column[data-method="bm25"] .snippet mark').all_inner_texts()
    assert marks and {m.lower() for m in marks} <= {"dropout", "rate", "rates", "training"}

    overlap = expected["overlap"]
    line = page.locator("#overlap")
    expect(line).to_contain_text("Overlap at k=10")
    expect(line).to_contain_text(f"agree on {len(overlap['shared_ids'])} result")
    assert float(line.get_attribute("data-jaccard")) == pytest.approx(overlap["jaccard_at_k"])
    expect(line.locator('[data-pair="lsi|dense"]')).to_have_text(
        f"LSI–Dense {overlap['pairwise_jaccard']['lsi|dense']:.2f}"
    )

    # every result's badge for every other column says how its rank differs there (or that it is new)
    ranks = {m: {h["id"]: h["rank"] for h in expected["runs"][m]["results"]} for m in METHODS}
    shown = page.locator("li.result .delta").evaluate_all(
        """badges => badges.map(b => [b.closest('.column').dataset.method, b.closest('li.result').dataset.chunkId,
                                      b.dataset.other, b.querySelector('[aria-hidden]').textContent])"""
    )
    assert len(shown) == sum(len(r) for r in ranks.values()) * 3
    for method, chunk_id, other, text in shown:
        here, there = ranks[method][chunk_id], ranks[other].get(chunk_id)
        change = (
            "new" if there is None else "=" if there == here else f"↑{there - here}" if there > here
            else f"↓{here - there}"
        )
        assert text == f"{LABELS[other]} {change}"

    assert "q=dropout+rate+during+training" in page.url and "k=10" in page.url
    expect(page.locator("#message")).to_be_hidden()
    finish(page, "enter-fills-four-columns")


def test_a_configured_reranker_adds_a_reranked_column(page: Any, live: LiveServer) -> None:
    import json

    expect_hidden = page.locator('.column[data-method="reranked"]')
    sent: list[dict[str, Any]] = []

    def index(route: Any) -> None:  # the service names a reranker
        body = httpx.get(f"{live.url}/index").json()
        route.fulfill(status=200, content_type="application/json", body=json.dumps({**body, "reranker": "rr"}))

    def search(route: Any) -> None:  # the page asks for hybrid reranked; the tiny app answers it unreranked
        body = json.loads(route.request.post_data)
        sent.append(body)
        route.continue_(post_data=json.dumps({**body, "rerank": False}))

    page.goto(live.url)
    expect(expect_hidden).to_be_hidden()  # no reranker: four columns
    page.route("**/index", index)
    page.route("**/search", search)
    page.goto(f"{live.url}/?q=dropout+rate")
    column = page.locator('.column[data-method="reranked"]')
    expect(column).to_be_visible()
    expect(column.locator("h2")).to_have_text("Reranked")
    expected = api_compare(live, "dropout rate")
    ids = [hit["id"] for hit in expected["runs"]["hybrid"]["results"]]
    expect(column.locator("li.result")).to_have_count(len(ids))
    assert column_ids(page, "reranked") == ids
    assert sent[-1]["method"] == "hybrid" and sent[-1]["rerank"] is True
    expect(column.locator("li.result").first.locator('.delta[data-other="hybrid"]')).to_have_class(re.compile("same"))
    finish(page, "reranked-column")


def test_keyboard_alone_runs_a_query_and_toggles_a_tag(page: Any, live: LiveServer) -> None:
    page.goto(live.url)
    expect(page.locator("#tag-list input[type=checkbox]")).to_have_count(4)
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("population stability index")
    page.keyboard.press("Enter")
    expect(page.locator('.column[data-method="dense"] li.result').first).to_be_visible()

    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "k"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "group"  # one result per document
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "submit"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"  # focus is visible
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.value") == "drift"
    page.keyboard.press("Space")  # ticking a tag runs the query again with the filter

    expected = api_compare(live, "population stability index", tags=["drift"])
    expect_columns(page, expected)
    titles = set(page.locator("li.result .title").all_inner_texts())
    assert titles == {"Data drift"}
    assert "tags=drift" in page.url
    finish(page, "keyboard-only")


def test_a_deep_link_runs_its_query_on_load(page: Any, live: LiveServer) -> None:
    page.goto(f"{live.url}/?q=stability%20of%20the%20population&k=3&tags=drift,training")

    expected = api_compare(live, "stability of the population", k=3, tags=["drift", "training"])
    expect_columns(page, expected)
    expect(page.get_by_label("Query")).to_have_value("stability of the population")
    expect(page.get_by_label("Results per method")).to_have_value("3")
    expect(page.get_by_label("drift", exact=True)).to_be_checked()
    expect(page.get_by_label("training", exact=True)).to_be_checked()
    expect(page.get_by_label("mlops", exact=True)).not_to_be_checked()
    for method in METHODS:
        assert len(column_ids(page, method)) <= 3
    expect(page.locator("#overlap")).to_contain_text("Overlap at k=3")

    # the URL follows the query box, so the comparison can be shared as it stands
    page.get_by_label("Query").fill("adam optimizer")
    assert page.evaluate("location.search") == "?q=adam+optimizer&k=3&tags=drift,training"
    finish(page, "deep-link")


def test_html_in_queries_and_passages_is_shown_as_text(
    page: Any, tiny_corpus: Path, api_settings: Settings, fake_encoder: HashingEncoder,
    make_app: Callable[..., FastAPI], serve: Callable[..., LiveServer],
) -> None:
    (tiny_corpus / "markup.md").write_text(
        "---\ntitle: Markup <em>in</em> titles\ntags: [training]\n---\n# Markup <em>in</em> titles\n\n"
        'Dropout <img src=x onerror="window.pwned = 1"> and <script>window.pwned = 2</script> stay text.\n'
    )
    build_index(build_config(api_settings), fake_encoder, corpus_dir=tiny_corpus, backends=["faiss", "lsi", "bm25"])
    live = serve(make_app(api_settings))
    page.goto(live.url)
    query = 'dropout <img src=y onerror="window.pwned = 3">'
    page.get_by_label("Query").fill(query)
    page.get_by_label("Query").press("Enter")

    hit = page.locator('.column[data-method="bm25"] li.result', has_text="Markup")
    expect(hit.locator(".title")).to_have_text("Markup <em>in</em> titles")
    expect(hit.locator(".snippet")).to_contain_text('<img src=x onerror="window.pwned = 1">')
    expect(hit.locator(".snippet mark").first).to_have_text("Dropout")
    expect(page.locator("#status")).to_contain_text(query)
    assert page.locator("main img, main em, main script").count() == 0
    assert page.evaluate("window.pwned") is None
    finish(page, "html-as-text")


def test_empty_too_long_and_rejected_queries_show_an_inline_message(page: Any, live: LiveServer) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if r.method == "POST" else None)
    page.goto(live.url)
    alert = page.get_by_role("alert")

    page.get_by_label("Query").press("Enter")
    expect(alert).to_contain_text("Type a query first")
    expect(page.locator(".column:visible")).to_have_count(4)
    expect(page.locator(".column").first).to_be_visible()
    expect(page.get_by_label("Query")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Query").fill("   ")
    page.get_by_label("Query").press("Enter")
    expect(alert).to_contain_text("not only spaces")

    page.get_by_label("Query").fill("é" * 1001)
    page.get_by_label("Query").press("Enter")
    expect(alert).to_contain_text("The query is too long")
    expect(alert).to_contain_text("1,001 characters; the limit is 1,000")
    assert requests == []  # nothing invalid was sent
    finish(page, "too-long-query")

    # a request the API rejects (a 422) is explained with the API's own words
    page.route("**/compare", lambda route: route.continue_(post_data=route.request.post_data.replace(
        '"k":10', '"k":0')))
    page.get_by_label("Query").fill("dropout")
    page.get_by_label("Query").press("Enter")
    expect(alert).to_contain_text("The query was not accepted.")
    expect(alert).to_contain_text("k: Input should be greater than or equal to 1")
    expect(page.locator("li.result")).to_have_count(0)
    finish(page, "rejected-query")


def test_a_backend_that_goes_down_shows_an_inline_message_while_the_others_answer(
    page: Any, live: LiveServer, app: FastAPI
) -> None:
    searcher = service_state(app).require_searcher()
    load = searcher.backend

    def backend(name: str) -> object:
        if name == "faiss":
            raise BackendUnavailableError("faiss", "its index file cannot be read")
        return load(name)

    searcher.backend = backend  # type: ignore[method-assign]
    page.goto(f"{live.url}/?q=dropout%20rate")

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Dense and Hybrid could not answer")
    expect(alert).to_contain_text("backend 'faiss' is unavailable: its index file cannot be read")
    for method in ("dense", "hybrid"):
        col = page.locator(f'.column[data-method="{method}"]')
        expect(col).to_have_class(re.compile(r"\bfailed\b"))
        expect(col.locator('[data-role="status"]')).to_contain_text("Unavailable: backend 'faiss'")
        expect(col.locator("li.result")).to_have_count(0)
    expected = httpx.post(f"{live.url}/compare", json={"query": "dropout rate", "methods": ["lsi", "bm25"]}).json()
    expect_columns(page, expected, methods=["lsi", "bm25"])
    expect(page.locator("#overlap")).to_contain_text("LSI and BM25 agree on")
    finish(page, "backend-down")

    searcher.backend = load  # type: ignore[method-assign]
    page.get_by_label("Query").press("Enter")
    expect(page.locator('.column[data-method="dense"] li.result').first).to_be_visible()
    expect(page.locator("#message")).to_be_hidden()
    expect(page.locator(".column.failed")).to_have_count(0)


def test_a_service_that_is_not_ready_or_gone_shows_an_inline_message(
    page: Any, settings: Settings, api_settings: Settings, make_app: Callable[..., FastAPI],
    serve: Callable[..., LiveServer],
) -> None:
    live = serve(make_app(api_settings), ready=False)  # no index was built: it never becomes ready
    page.goto(live.url)
    expect(page.locator("#tag-list")).to_contain_text("Tags could not be loaded")
    page.get_by_label("Query").fill("dropout")
    page.get_by_label("Query").press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The search service is not ready.")
    expect(alert).to_contain_text("no index")
    expect(page.locator(".column:visible")).to_have_count(4)
    finish(page, "not-ready")

    live.stop()
    page.get_by_label("Query").press("Enter")
    expect(alert).to_contain_text("Cannot reach the search service.")
    expect(page.get_by_label("Query")).to_have_value("dropout")
    finish(page, "service-gone")


def test_locations_markdown_formatting_and_grouping_by_document(
    page: Any, tiny_corpus: Path, api_settings: Settings, fake_encoder: HashingEncoder,
    make_app: Callable[..., FastAPI], serve: Callable[..., LiveServer],
) -> None:
    from tests.documents_fixtures import PDF_PAGES, make_pdf

    (tiny_corpus / "paper.pdf").write_bytes(make_pdf(PDF_PAGES))
    (tiny_corpus / "format.md").write_text(
        "# Formatting\n\nSinusoidal **positional** encodings use *sine* and `torch.sin` with _cosine_ "
        "<b>not bold</b>.\n\n```python\nangle = pos / 10000 ** (2 * i / d)\n```\n"
    )
    build_index(build_config(api_settings), fake_encoder, corpus_dir=tiny_corpus, backends=["faiss", "lsi", "bm25"])
    live = serve(make_app(api_settings))
    page.goto(live.url)
    page.get_by_label("Query").fill("sine cosine positional encodings")
    page.get_by_label("Query").press("Enter")

    column = page.locator('.column[data-method="bm25"]')
    paper = column.locator("li.result", has_text="page 3").first
    expect(paper.locator(".location")).to_contain_text("PDF · page 3")
    formatted = column.locator("li.result", has_text="Formatting").first
    expect(formatted.locator(".snippet strong")).to_have_text("positional")
    expect(formatted.locator(".snippet em").first).to_have_text("sine")
    expect(formatted.locator(".snippet code").first).to_have_text("torch.sin")
    expect(formatted.locator(".snippet")).to_contain_text("<b>not bold</b>")
    assert page.locator("main b").count() == 0

    page.get_by_label("One result per document").check()
    expect(page.locator("#status")).to_contain_text("sine cosine")
    page.wait_for_function("location.search.includes('group=document')")
    expect(column.locator("li.result").first).to_be_visible()
    doc_ids = column.locator("li.result .title").evaluate_all("items => items.map(i => i.title)")
    assert len(doc_ids) == len(set(doc_ids)) and "paper" in doc_ids
    finish(page, "locations-and-grouping")
