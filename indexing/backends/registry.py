"""Backend names mapped to their classes through the catalog; a backend's module is imported only when used."""

from __future__ import annotations

from importlib import import_module
from typing import cast

from indexing.backends.base import KeywordIndex, VectorIndex
from mlsearch.catalog import BACKEND_NAMES, BACKENDS, KEYWORD_BACKEND_NAMES, VECTOR_BACKEND_NAMES
from mlsearch.errors import BackendUnavailableError, UnknownBackendError


def _import(name: str, names: tuple[str, ...], kind: str) -> type:
    if name not in names:
        raise UnknownBackendError(f"unknown {kind} backend {name!r}; valid: {', '.join(sorted(names))}")
    spec = BACKENDS[name]
    module_name, _, class_name = spec.class_path.partition(":")
    try:
        module = import_module(module_name)
    except ImportError as exc:
        hint = f"; pip install '{spec.install}'" if spec.install else ""
        raise BackendUnavailableError(name, f"its library is not installed ({exc.name}){hint}") from exc
    return cast(type, getattr(module, class_name))


def backend_class(name: str) -> type[VectorIndex] | type[KeywordIndex]:
    """The class of any backend, vector or keyword (for its ``config_type``).

    Raises:
        UnknownBackendError: No such backend.
        BackendUnavailableError: Its library is not installed.
    """
    if name in KEYWORD_BACKEND_NAMES:
        return keyword_backend(name)
    return vector_backend(name)


def vector_backend(name: str) -> type[VectorIndex]:
    """The :class:`~indexing.backends.base.VectorIndex` class registered under ``name``.

    Raises:
        UnknownBackendError: No such vector backend.
        BackendUnavailableError: Its library is not installed.
    """
    return cast("type[VectorIndex]", _import(name, VECTOR_BACKEND_NAMES, "vector"))


def keyword_backend(name: str) -> type[KeywordIndex]:
    """The :class:`~indexing.backends.base.KeywordIndex` class registered under ``name``.

    Raises:
        UnknownBackendError: No such keyword backend.
        BackendUnavailableError: Its library is not installed.
    """
    return cast("type[KeywordIndex]", _import(name, KEYWORD_BACKEND_NAMES, "keyword"))


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
        if name not in BACKEND_NAMES:
            raise UnknownBackendError(f"unknown backend {name!r}; valid: {', '.join(BACKEND_NAMES)}")
        if name not in out:
            out.append(name)
    if not out:
        raise UnknownBackendError(f"no backend given; valid: {', '.join(BACKEND_NAMES)}")
    return out
