"""Search options: offset (pagination), group_by document, and filters on doc id, source type and path prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing.backends.configs import build_config, search_config
from indexing.build import build_index
from indexing.filters import ChunkFilter
from mlsearch.errors import BadQueryError
from mlsearch.settings import Settings
from search.grouping import group_by_document
from search.searcher import Searcher
from tests.documents_fixtures import PDF_PAGES, make_notebook, make_pdf
from tests.fakes import HashingEncoder, updated_settings
from tests.indexing import es_fake

METHODS = [("dense", "faiss"), ("dense", "annoy"), ("lsi", "faiss"), ("bm25", "faiss"), ("hybrid", "faiss")]
QUERY = "attention training gradient dropout clusters similarity search"


@pytest.fixture
def mixed_corpus(tiny_corpus: Path) -> Path:
    (tiny_corpus / "papers").mkdir()
    (tiny_corpus / "papers" / "paper.pdf").write_bytes(make_pdf(PDF_PAGES))
    (tiny_corpus / "kmeans.ipynb").write_bytes(make_notebook())
    return tiny_corpus


@pytest.fixture
def searcher(mixed_corpus: Path, settings: Settings, fake_encoder: HashingEncoder) -> Searcher:
    build_index(build_config(settings), fake_encoder, corpus_dir=mixed_corpus,
                backends=["faiss", "annoy", "lsi", "bm25"])
    return Searcher.open(settings.index_dir, search_config(settings), encoder=fake_encoder)


@pytest.mark.parametrize(("method", "backend"), METHODS)
def test_offset_pages_through_the_same_ranking(searcher: Searcher, method: str, backend: str) -> None:
    whole = searcher.search(QUERY, k=6, method=method, backend=backend).hits
    first = searcher.search(QUERY, k=3, method=method, backend=backend).hits
    second = searcher.search(QUERY, k=3, method=method, backend=backend, offset=3).hits
    assert [h.id for h in first + second] == [h.id for h in whole]
    assert [h.rank for h in second] == [4, 5, 6]


@pytest.mark.parametrize(("method", "backend"), METHODS)
def test_group_by_document_keeps_the_best_chunk_and_counts_the_others(
    searcher: Searcher, method: str, backend: str
) -> None:
    flat = searcher.search(QUERY, k=50, method=method, backend=backend).hits
    grouped = searcher.search(QUERY, k=3, method=method, backend=backend, group_by="document").hits
    docs = [h.doc_id for h in grouped]
    assert len(docs) == len(set(docs)) == min(3, len({h.doc_id for h in flat}))
    first_of: dict[str, str] = {}
    for hit in flat:
        first_of.setdefault(hit.doc_id, hit.id)
    assert docs == list(first_of)[:3]
    for hit in grouped:
        assert hit.id == first_of[hit.doc_id]
        assert hit.other_matches == sum(h.doc_id == hit.doc_id for h in flat) - 1
    assert [h.rank for h in searcher.search(QUERY, k=2, method=method, backend=backend, group_by="document",
                                            offset=1).hits] == [2, 3]


@pytest.mark.parametrize(("method", "backend"), METHODS)
def test_filters_on_doc_id_source_type_and_path_prefix(
    searcher: Searcher, mixed_corpus: Path, method: str, backend: str
) -> None:
    def docs(filters: ChunkFilter) -> set[str]:
        return {h.doc_id for h in searcher.search(QUERY, k=50, method=method, backend=backend, tags=filters).hits}

    assert docs(ChunkFilter.of(doc_ids=["dropout", "kmeans"])) == {"dropout", "kmeans"}
    assert docs(ChunkFilter.of(source_types=["pdf"])) == {"papers/paper"}
    assert docs(ChunkFilter.of(source_types=["notebook", "text"])) == {"kmeans", "faiss"}
    assert docs(ChunkFilter.of(path_prefix=str(mixed_corpus / "papers"))) == {"papers/paper"}
    assert docs(ChunkFilter.of(tags=["training"], doc_ids=["optimizers", "drift"])) == {"optimizers"}
    assert docs(ChunkFilter.of(doc_ids=["nothing"])) == set()


def test_bad_options_are_clear_errors(searcher: Searcher) -> None:
    with pytest.raises(BadQueryError, match="offset"):
        searcher.search(QUERY, k=10, offset=995)
    with pytest.raises(BadQueryError, match="group_by"):
        searcher.search(QUERY, group_by="title")


def test_group_by_document_function() -> None:
    ranked = [(5, 0.9), (6, 0.8), (1, 0.7), (7, 0.6), (9, 0.5)]
    doc = {5: "a", 6: "a", 1: "b", 7: "a", 9: None}
    grouped = group_by_document(ranked, doc.get)
    assert [(g.position, g.score, g.others) for g in grouped] == [(5, 0.9, 2), (1, 0.7, 0)]


@pytest.mark.parametrize("method", ["dense", "bm25", "hybrid"])
def test_elasticsearch_filters_inside_its_queries(
    monkeypatch: pytest.MonkeyPatch, mixed_corpus: Path, settings: Settings, fake_encoder: HashingEncoder,
    method: str,
) -> None:
    cluster = es_fake.install(monkeypatch)
    es_settings = updated_settings(settings, elasticsearch_url="http://es.test:9200")
    build_index(build_config(es_settings), fake_encoder, corpus_dir=mixed_corpus,
                backends=["faiss", "bm25", "elasticsearch"])
    searcher = Searcher.open(es_settings.index_dir, search_config(es_settings), encoder=fake_encoder)

    def docs(filters: ChunkFilter) -> set[str]:
        hits = searcher.search(QUERY, k=50, method=method, backend="elasticsearch", tags=filters).hits
        return {h.doc_id for h in hits}

    assert docs(ChunkFilter.of(doc_ids=["dropout", "kmeans"])) == {"dropout", "kmeans"}
    assert docs(ChunkFilter.of(source_types=["pdf"])) == {"papers/paper"}
    assert docs(ChunkFilter.of(path_prefix=str(mixed_corpus / "papers"))) == {"papers/paper"}
    body = cluster.calls("POST", r"/mlsearch-.*/_msearch")[-1].body
    clauses = [line["knn"]["filter"] if "knn" in line else line["query"]["bool"]["filter"] for line in body[1::2]]
    assert all(c == [{"prefix": {"path": str(mixed_corpus / "papers")}}] for c in clauses)
    grouped = searcher.search(QUERY, k=3, method=method, backend="elasticsearch", group_by="document").hits
    assert len({h.doc_id for h in grouped}) == len(grouped)
