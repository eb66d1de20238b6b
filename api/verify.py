"""Check a newly opened index version completely before it is swapped in.

A reload must never trade a working version for a damaged one. :func:`verify_searcher` checks the files
against the sha256 sums recorded when the version was published (``indexing.integrity``), opens every local
backend and the chunk store, checks that each backend holds as many entries as the store has chunks, reads
the first and last chunk, and runs a probe query with every method the version can answer. Any failure,
whatever the library raised (FAISS, Annoy, SQLite, NumPy, pickle), becomes one :class:`IndexCorruptError`
that names the part and the reason; the service keeps serving the current version.
"""

from __future__ import annotations

import logging
from typing import Any

from indexing.integrity import verify_checksums
from mlsearch.catalog import BACKENDS, DEFAULT_VECTOR_BACKEND, METHODS, required_backends
from mlsearch.errors import (
    BackendUnavailableError,
    IndexCorruptError,
    MlsearchError,
    ModelLoadError,
    ModelMismatchError,
)
from search.compare import run_search
from search.searcher import Searcher

logger = logging.getLogger(__name__)

PROBE_QUERY = "learning rate"


def verify_searcher(searcher: Searcher) -> None:
    """Open and probe every part of ``searcher``'s version.

    Raises:
        IndexCorruptError: A file of the version is missing, truncated or corrupt, or a probe query fails.
    """
    where = f"index version {searcher.directory.name}"
    verify_checksums(searcher.directory)
    chunks = _check(where, "chunk store", lambda: _check_store(searcher))
    local = []
    for name in searcher.built_backends:
        if name in BACKENDS and not BACKENDS[name].local:  # on a server: logged, the others still serve
            try:
                searcher.backend(name)
            except MlsearchError as exc:
                logger.warning("backend %s is not available: %s", name, exc)
            continue
        backend = _check(where, f"backend {name}", lambda n=name: searcher.backend(n))  # type: ignore[misc]
        size = _size(backend)
        if size is not None and size != chunks:
            raise IndexCorruptError(f"{where} is damaged: backend {name} holds {size} entries, the store {chunks}")
        local.append(name)
    for method, backend_name in _probes(local):
        _check(where, f"a probe {method} search", lambda m=method, b=backend_name: run_search(  # type: ignore[misc]
            searcher, PROBE_QUERY, min(10, chunks), m, b))


def _check_store(searcher: Searcher) -> int:
    count = len(searcher.store)
    if count == 0:
        raise ValueError("it holds no chunks")
    ends = {0, count - 1}
    if len(searcher.store.get(sorted(ends))) != len(ends):
        raise ValueError("its first or last chunk cannot be read")
    return count


def _size(backend: Any) -> int | None:
    try:
        return int(len(backend))
    except TypeError:
        return None


def _probes(local: list[str]) -> list[tuple[str, str]]:
    """A (method, vector backend) pair for every way the version's local backends can answer."""
    vectors = [name for name in local if name in BACKENDS and BACKENDS[name].kind == "vector"]
    probes, seen = [], set()
    for method in METHODS:
        for asked in vectors or [DEFAULT_VECTOR_BACKEND]:
            used = tuple(required_backends(method, asked))
            if set(used) <= set(local) and used not in seen:
                seen.add(used)
                probes.append((method, asked))
    return probes


def _check(where: str, part: str, action: Any) -> Any:
    try:
        return action()
    except (ModelLoadError, ModelMismatchError):
        raise  # the model, not the version's files: the caller reports it as it is
    except BackendUnavailableError as exc:
        raise IndexCorruptError(f"{where} cannot be served: {part}: {exc}") from exc
    except Exception as exc:  # FAISS, Annoy, SQLite, NumPy, pickle: whatever a damaged file makes them raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IndexCorruptError(f"{where} is damaged: {part} failed: {reason}") from exc
