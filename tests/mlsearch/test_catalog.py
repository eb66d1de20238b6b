"""The catalog: every entry resolves to a class that fills its contract, and methods plan onto backends."""

from __future__ import annotations

import pytest

from indexing.backends.base import FilteringIndex
from indexing.backends.registry import keyword_backend, vector_backend
from mlsearch import catalog
from mlsearch.catalog import BACKENDS, METHODS, UnknownNameError, answering_backend, plan, required_backends


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_backend_resolves_to_its_class(name: str) -> None:
    spec = BACKENDS[name]
    cls = vector_backend(name) if spec.kind == "vector" else keyword_backend(name)
    assert cls.name == name
    for member in ("search", "save", "load", "describe", "__len__"):
        assert callable(getattr(cls, member, None)), (name, member)
    assert callable(getattr(cls, "add" if spec.kind == "vector" else "build", None))
    assert callable(getattr(cls, "rank", None)) == spec.native_filtering, "native filtering means rank()"
    if spec.native_filtering:
        assert issubclass(cls, FilteringIndex)
    assert callable(getattr(cls, "remove", None)) == spec.deletion_by_id


def test_every_method_is_served_and_its_parts_are_base_methods() -> None:
    for name, spec in METHODS.items():
        assert spec.default_backend in BACKENDS
        assert set(spec.parts) <= set(METHODS) and all(not METHODS[p].fused for p in spec.parts)
        assert catalog.backends_for(name), name
        for part in spec.parts:
            assert part in BACKENDS[METHODS[part].default_backend].serves


@pytest.mark.parametrize(
    ("method", "backend", "expected"),
    [
        ("dense", "annoy", [("dense", "annoy")]),
        ("hybrid", "faiss", [("dense", "faiss"), ("bm25", "bm25")]),
        ("lsi", "faiss", [("lsi", "lsi")]),
        ("bm25", "faiss", [("bm25", "bm25")]),
        ("lsi", "elasticsearch", [("lsi", "lsi")]),
        ("bm25", "elasticsearch", [("bm25", "elasticsearch")]),
        ("hybrid", "elasticsearch", [("dense", "elasticsearch"), ("bm25", "elasticsearch")]),
    ],
)
def test_plan_puts_each_part_on_the_asked_backend_when_it_serves_it(
    method: str, backend: str, expected: list[tuple[str, str]]
) -> None:
    assert plan(method, backend) == expected
    assert required_backends(method, backend) == list(dict.fromkeys(b for _, b in expected))


def test_answering_backend_is_the_asked_one_only_when_it_answers() -> None:
    assert answering_backend("dense", "annoy") == "annoy"
    assert answering_backend("lsi", "faiss") == "lsi"
    assert answering_backend("bm25", "faiss") == "bm25"
    assert answering_backend("bm25", "elasticsearch") == "elasticsearch"


def test_unknown_names_are_refused() -> None:
    with pytest.raises(UnknownNameError, match="valid: dense"):
        plan("semantic", "faiss")
    with pytest.raises(UnknownNameError, match="unknown backend"):
        plan("dense", "milvus")


def test_settings_and_api_enums_come_from_the_catalog() -> None:
    from api.schemas import CompareRequest, SearchRequest
    from mlsearch.settings import Settings

    assert Settings().backends == [n for n, s in BACKENDS.items() if s.built_by_default]
    schema = SearchRequest.model_json_schema()
    assert schema["properties"]["method"]["enum"] == list(METHODS)
    assert schema["properties"]["backend"]["enum"] == list(catalog.VECTOR_BACKEND_NAMES)
    compare = CompareRequest.model_json_schema()
    assert compare["properties"]["methods"]["items"]["enum"] == list(METHODS)
