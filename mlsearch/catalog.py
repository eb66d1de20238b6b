"""The catalog of retrieval methods and index backends: the one place that says which backend serves what.

A *method* is what a caller asks for (``dense``, ``lsi``, ``bm25``, ``hybrid``). A base method is one ranking;
``hybrid`` fuses the rankings of its parts (:mod:`search.fusion`). A *backend* is an index that can be
built into an index directory; it serves one or more base methods. The searcher, compare, evaluation, drift,
the CLI and the API's enums all read this table; the registry imports a backend's class from its
``class_path`` only when it is used.

Adding a backend is one :class:`BackendSpec` in :data:`BACKENDS` (and its own module).

Example:
    >>> plan("hybrid", "annoy")
    [('dense', 'annoy'), ('bm25', 'bm25')]
    >>> plan("bm25", "elasticsearch"), plan("lsi", "elasticsearch")
    ([('bm25', 'elasticsearch')], [('lsi', 'lsi')])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

BackendKind = Literal["vector", "keyword"]


class UnknownNameError(ValueError):
    """A method or backend name the catalog does not know (callers turn it into their own error type)."""


@dataclass(frozen=True)
class BackendSpec:
    """What one backend is and can do.

    Attributes:
        name: The name used in settings, manifests, the CLI and the API.
        kind: ``vector`` (searched with a query embedding) or ``keyword`` (searched with the query text).
        class_path: ``"module:Class"`` of its implementation, imported on first use.
        serves: The base methods it can rank by itself.
        native_filtering: It applies the tag filter inside its own queries (else the searcher over-fetches).
        deletion_by_id: Its class can remove single entries by id (``remove(ids)``).
        quantization: It can store vectors quantized (int8, binary, ...), chosen by its settings.
        local: It lives in the index directory (no server to reach).
        built_by_default: ``mlsearch index build`` builds it when no backend list is given.
        install: What to install when its library is missing.
    """

    name: str
    kind: BackendKind
    class_path: str
    serves: frozenset[str]
    native_filtering: bool = False
    deletion_by_id: bool = False
    quantization: bool = False
    local: bool = True
    built_by_default: bool = True
    install: str = ""


@dataclass(frozen=True)
class MethodSpec:
    """One retrieval method.

    Attributes:
        name: The name callers use.
        description: One line for help texts and the OpenAPI document.
        needs_model: Whether it embeds the query (and so needs the embedding model).
        default_backend: The backend that serves it when the caller names none (for ``hybrid``, its dense part).
        parts: The base methods whose rankings it fuses (just itself for a base method).
        smoothed: Whether a local backend's scores for it are smoothed over the chunks' nearest-neighbour graph
            (:mod:`search.smoothing`).
    """

    name: str
    description: str
    needs_model: bool
    default_backend: str
    parts: tuple[str, ...]
    smoothed: bool = False

    @property
    def fused(self) -> bool:
        """Whether it fuses several rankings."""
        return len(self.parts) > 1


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec("faiss", "vector", "indexing.backends.faiss_index:FaissIndex", frozenset({"dense"}),
                    quantization=True, install="faiss-cpu"),
        BackendSpec("annoy", "vector", "indexing.backends.annoy_index:AnnoyIndex", frozenset({"dense"}),
                    install="annoy"),
        BackendSpec("elasticsearch", "vector", "indexing.backends.elasticsearch_index:ElasticsearchIndex",
                    frozenset({"dense", "bm25"}), native_filtering=True, quantization=True,
                    local=False, built_by_default=False, install="elasticsearch>=9,<10"),
        BackendSpec("usearch", "vector", "indexing.backends.usearch_index:UsearchIndex", frozenset({"dense"}),
                    quantization=True, built_by_default=False, install="usearch"),
        BackendSpec("lsi", "keyword", "indexing.backends.lsi:LsiIndex", frozenset({"lsi"}), install="scikit-learn"),
        BackendSpec("bm25", "keyword", "indexing.backends.bm25:Bm25Index", frozenset({"bm25"}), install="bm25s"),
    )
}

METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("dense", "embedding similarity in a vector backend", True, "faiss", ("dense",)),
        MethodSpec("lsi", "latent semantic indexing (TF-IDF and SVD)", False, "lsi", ("lsi",)),
        MethodSpec("bm25", "BM25 keyword ranking, smoothed over similar chunks", False, "bm25", ("bm25",),
                   smoothed=True),
        MethodSpec("hybrid", "fusion of dense and smoothed bm25, with pseudo-relevance feedback", True, "faiss",
                   ("dense", "bm25")),
    )
}

DEFAULT_METHOD = "dense"
DEFAULT_COMPARE_METHODS: tuple[str, ...] = ("lsi", "dense")
DEFAULT_VECTOR_BACKEND = METHODS["dense"].default_backend
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)
VECTOR_BACKEND_NAMES: tuple[str, ...] = tuple(n for n, s in BACKENDS.items() if s.kind == "vector")
KEYWORD_BACKEND_NAMES: tuple[str, ...] = tuple(n for n, s in BACKENDS.items() if s.kind == "keyword")
DEFAULT_BUILD_BACKENDS: tuple[str, ...] = tuple(n for n, s in BACKENDS.items() if s.built_by_default)
LOCAL_VECTOR_BACKEND_NAMES: tuple[str, ...] = tuple(n for n in VECTOR_BACKEND_NAMES if BACKENDS[n].local)
KEYWORD_PREFERENCE: tuple[str, ...] = ("bm25", *(n for n in KEYWORD_BACKEND_NAMES if n != "bm25"))
"""Keyword backends in order of preference where any one will do (drift's unknown-term share)."""
EMBEDDING_METHOD: str = next(n for n, s in METHODS.items() if s.needs_model and not s.fused)
"""The base method that ranks by the query's embedding (on a vector backend)."""
FUSED_METHOD: str = next(n for n, s in METHODS.items() if s.fused)
"""The method that fuses rankings; fusion variants and tuned fusions run as this method."""
FUSED_PARTS: tuple[str, ...] = METHODS[FUSED_METHOD].parts
"""The base methods the fused method combines by default."""
OTHER_BASE_METHODS: tuple[str, ...] = tuple(n for n, s in METHODS.items() if not s.fused and n not in FUSED_PARTS)
"""Base methods that a tuned fusion may add as a further list."""


def smooths_any(backends: Iterable[str]) -> bool:
    """Whether any of these built backends has scores the searcher smooths over the chunks' neighbour graph: a
    backend the searcher filters itself (not natively filtering) that serves a method marked ``smoothed``."""
    return any(METHODS[m].smoothed for name in backends if name in BACKENDS
               and not BACKENDS[name].native_filtering for m in BACKENDS[name].serves)


def runs_as(name: str) -> str:
    """The catalog method a name runs as: itself, or the fused method for a fusion variant (``<fused>-rrf``)."""
    return FUSED_METHOD if name.startswith(f"{FUSED_METHOD}-") else name


def method_spec(name: str) -> MethodSpec:
    """The method called ``name``.

    Raises:
        UnknownNameError: No such method.
    """
    try:
        return METHODS[name]
    except KeyError:
        raise UnknownNameError(f"unknown method {name!r}; valid: {', '.join(METHOD_NAMES)}") from None


def backend_spec(name: str) -> BackendSpec:
    """The backend called ``name``.

    Raises:
        UnknownNameError: No such backend.
    """
    try:
        return BACKENDS[name]
    except KeyError:
        raise UnknownNameError(f"unknown backend {name!r}; valid: {', '.join(BACKEND_NAMES)}") from None


def backends_for(method: str) -> tuple[str, ...]:
    """Every backend that can serve a base method (for a fused method: those of any of its parts)."""
    parts = set(method_spec(method).parts)
    return tuple(name for name, spec in BACKENDS.items() if spec.serves & parts)


def plan(method: str, backend: str) -> list[tuple[str, str]]:
    """Which backend serves each part of a method when the caller asks for ``backend``.

    A part runs on the asked backend when that backend serves it, else on the part's own default backend
    (so ``bm25`` with ``faiss`` runs on the BM25 index, and with ``elasticsearch`` inside Elasticsearch).

    Returns:
        ``(base method, backend name)`` for each part, in the method's order.

    Raises:
        UnknownNameError: Unknown method or backend.
    """
    spec = method_spec(method)
    asked = backend_spec(backend)
    return [(part, backend if part in asked.serves else METHODS[part].default_backend) for part in spec.parts]


def required_backends(method: str, backend: str) -> list[str]:
    """The distinct backends a method uses with the asked backend, in order (see :func:`plan`)."""
    return list(dict.fromkeys(name for _, name in plan(method, backend)))


def answering_backend(method: str, backend: str) -> str:
    """The backend a result is reported under: the asked one when it serves any part, else the first part's."""
    names = required_backends(method, backend)
    return backend if backend in names else names[0]
