"""Backend names mapped to their classes; a backend's module is imported only when it is used."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from mlsearch.errors import BackendUnavailableError, UnknownBackendError

VECTOR_BACKENDS: dict[str, str] = {
    "faiss": "indexing.backends.faiss_index:FaissIndex",
    "annoy": "indexing.backends.annoy_index:AnnoyIndex",
    "elasticsearch": "indexing.backends.elasticsearch_index:ElasticsearchIndex",
}
KEYWORD_BACKENDS: dict[str, str] = {
    "lsi": "indexing.backends.lsi:LsiIndex",
    "bm25": "indexing.backends.bm25:Bm25Index",
}
ALL_BACKENDS = {**VECTOR_BACKENDS, **KEYWORD_BACKENDS}


def _import(name: str, table: dict[str, str], kind: str) -> Any:
    if name not in table:
        raise UnknownBackendError(f"unknown {kind} backend {name!r}; valid: {', '.join(sorted(table))}")
    module_name, _, class_name = table[name].partition(":")
    try:
        module = import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailableError(name, f"its library is not installed ({exc.name})") from exc
    return getattr(module, class_name)


def vector_backend(name: str) -> Any:
    """The :class:`~indexing.backends.base.VectorIndex` class registered under ``name``.

    Raises:
        UnknownBackendError: No such vector backend.
        BackendUnavailableError: Its library is not installed.
    """
    return _import(name, VECTOR_BACKENDS, "vector")


def keyword_backend(name: str) -> Any:
    """The :class:`~indexing.backends.base.KeywordIndex` class registered under ``name``.

    Raises:
        UnknownBackendError: No such keyword backend.
        BackendUnavailableError: Its library is not installed.
    """
    return _import(name, KEYWORD_BACKENDS, "keyword")


def parse_backends(names: str | list[str]) -> list[str]:
    """Split and validate a comma-separated backend list, keeping order and dropping repeats.

    Raises:
        UnknownBackendError: A name is not a known backend.
    """
    items = names.split(",") if isinstance(names, str) else names
    out: list[str] = []
    for raw in items:
        name = raw.strip().lower()
        if not name:
            continue
        if name not in ALL_BACKENDS:
            raise UnknownBackendError(f"unknown backend {name!r}; valid: {', '.join(ALL_BACKENDS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise UnknownBackendError(f"no backend given; valid: {', '.join(ALL_BACKENDS)}")
    return out
