"""What an index costs: disk per backend, memory per backend once loaded, and advice for large corpora."""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from indexing.backends.configs import given_config
from indexing.backends.registry import backend_class, keyword_backend, vector_backend
from indexing.manifest import Manifest
from indexing.store import ChunkStore
from mlsearch.catalog import BACKENDS, KEYWORD_BACKEND_NAMES
from mlsearch.errors import MlsearchError

logger = logging.getLogger(__name__)
EXACT_SEARCH_LIMIT = 100_000
"""Past this many chunks, exact (``Flat``) FAISS search is slow enough that a graph or inverted index pays."""


def disk_bytes(path: Path) -> int:
    """Bytes on disk of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def backend_disk(directory: Path, manifest: Manifest) -> dict[str, int]:
    """Bytes on disk of the chunk store and of each backend's folder."""
    sizes = {ChunkStore.FILE: disk_bytes(directory / ChunkStore.FILE)}
    sizes.update({name: disk_bytes(directory / name) for name in manifest.backends})
    return sizes


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def backend_memory(directory: Path, manifest: Manifest, configs: Mapping[str, object]) -> dict[str, int]:
    """Resident memory each backend adds once loaded and asked one query, as the service would hold it.

    Measured as the growth of this process's RSS while each backend is loaded (after the previous ones), so
    memory-mapped files count only for the pages a query touched. Elasticsearch holds nothing here.

    Args:
        directory: The index version.
        manifest: Its manifest.
        configs: Backend name → its config (a backend not here is loaded with its defaults).

    Returns:
        Bytes per backend.
    """
    out: dict[str, int] = {}
    held: list[Any] = []
    store = ChunkStore(directory / ChunkStore.FILE)
    query_vector = np.zeros((1, manifest.model.dimension), np.float32)
    try:
        first = store.embedding_batches(manifest.model.dimension, 1)
        query_vector = next(first)[1]
    except (StopIteration, ValueError):
        pass
    finally:
        store.close()
    for name in manifest.backends:
        if name not in BACKENDS or not BACKENDS[name].local:  # a server's memory is not ours to measure
            continue
        before = _rss()
        backend: Any
        try:
            if name in KEYWORD_BACKEND_NAMES:
                backend = keyword_backend(name).load(directory / name, given_config(name, configs))
                backend.search("the model and the data", 10)
            else:
                backend = vector_backend(name).load(directory / name, given_config(name, configs))
                backend.search(query_vector, 10)
        except Exception as exc:  # report what can be measured; one broken backend must not hide the rest
            logger.warning("cannot load %s to measure it: %s", name, exc)
            continue
        held.append(backend)
        out[name] = max(0, _rss() - before)
    return out


def scale_advice(manifest: Manifest, chunks: int) -> list[str]:
    """Suggestions for an index of this size (empty when there is nothing to suggest).

    Each built backend whose class has a ``scale_advice(described, chunks, exact_limit)`` method gives its own,
    from its manifest entry.
    """
    advice: list[str] = []
    for name, described in manifest.backends.items():
        try:
            advise = getattr(backend_class(name), "scale_advice", None)
        except MlsearchError:  # unknown or not installed: nothing to say about it
            continue
        if advise is not None:
            advice += advise(described, chunks, EXACT_SEARCH_LIMIT)
    return advice
