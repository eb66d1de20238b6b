"""The two small contracts that every index backend fills in."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np

from indexing.chunks import Chunk
from indexing.filters import ChunkFilter

Hits = tuple[np.ndarray, np.ndarray]
"""``(scores, ids)``: float32 and int64 arrays of shape ``(n_queries, k)``; missing hits have id -1."""
Ranked = list[tuple[int, float]]
"""``(position, score)`` pairs, best first."""


@runtime_checkable
class VectorIndex(Protocol):
    """A dense index scored by inner product. Ids are the chunks' positions in the chunk store."""

    name: ClassVar[str]
    config_type: ClassVar[type]
    """Its options: a frozen pydantic dataclass defined in the backend's own module (see ``configs.py``)."""

    def __init__(self, dimension: int, config: Any) -> None:
        """An empty index for vectors of ``dimension`` floats; ``config`` is a :attr:`config_type`."""
        ...

    def add(self, vectors: np.ndarray, chunks: Sequence[Chunk]) -> None:
        """Append vectors (row ``i`` gets id ``len(self) + i``); ``chunks`` are their passages."""
        ...

    def search(self, queries: np.ndarray, k: int) -> Hits:
        """The ``k`` highest inner products for each query row."""
        ...

    def save(self, directory: Path) -> None:
        """Write the index into ``directory`` (created if needed)."""
        ...

    @classmethod
    def load(cls, directory: Path, config: Any) -> Self:
        """Open an index written by :meth:`save`."""
        ...

    def describe(self) -> dict[str, Any]:
        """The settings this index was built with, for the manifest."""
        ...

    def __len__(self) -> int:
        """Number of vectors held."""
        ...


@runtime_checkable
class KeywordIndex(Protocol):
    """A lexical index over chunk texts. Ids are the chunks' positions in the chunk store."""

    name: ClassVar[str]
    config_type: ClassVar[type]
    """Its options: a frozen pydantic dataclass defined in the backend's own module (see ``configs.py``)."""

    def __init__(self, config: Any) -> None:
        """An empty index; ``config`` is a :attr:`config_type`."""
        ...

    def build(self, texts: Sequence[str]) -> None:
        """Index the texts (text ``i`` gets id ``i``)."""
        ...

    def search(self, query: str, k: int) -> Hits:
        """The ``k`` best-scoring texts for one query, as arrays of shape ``(1, <=k)``."""
        ...

    def vocabulary_share(self, query: str) -> float:
        """Share of the query's terms that the index knows (1.0 for a query with no terms)."""
        ...

    def save(self, directory: Path) -> None:
        """Write the index into ``directory`` without pickle."""
        ...

    @classmethod
    def load(cls, directory: Path, config: Any) -> Self:
        """Open an index written by :meth:`save`; never runs code from the files."""
        ...

    def describe(self) -> dict[str, Any]:
        """The settings this index was built with, for the manifest."""
        ...

    def __len__(self) -> int:
        """Number of texts held."""
        ...


@runtime_checkable
class FilteringIndex(Protocol):
    """A backend that ranks with the tag filter inside its own queries (``native_filtering`` in the catalog).

    The searcher hands it the filter and every base method it serves for one query at once (so it can answer
    them in one round trip); backends without this capability get the searcher's over-fetch loop instead.
    """

    def rank(
        self, query: str, vector: np.ndarray | None, methods: Sequence[str], k: int,
        tags: ChunkFilter | Sequence[str] | None,
    ) -> list[Ranked]:
        """One ranking per method (in order), each the ``k`` best ``(position, score)`` carrying any of ``tags``.

        Args:
            query: The query text (for keyword methods).
            vector: The query embedding (for methods that need the model; None when none does).
            methods: Base methods this backend serves (see :data:`mlsearch.catalog.BACKENDS`).
            k: Hits per ranking.
            tags: Keep only chunks carrying any of these tags (None: no filter).
        """
        ...


def top_k(scores: np.ndarray, k: int, keep: np.ndarray | None = None) -> Hits:
    """Indices and scores of the ``k`` largest values of a 1-D score array, best first.

    Args:
        scores: One score per item.
        k: How many to keep.
        keep: Optional boolean mask; items where it is False are left out.

    Returns:
        ``(scores, ids)`` of shape ``(1, m)`` with ``m <= k``.
    """
    candidates = np.flatnonzero(keep) if keep is not None else np.arange(scores.shape[0])
    if candidates.size == 0 or k <= 0:
        return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
    values = scores[candidates]
    m = min(k, candidates.size)
    part = np.argpartition(-values, m - 1)[:m] if m < candidates.size else np.arange(candidates.size)
    order = part[np.lexsort((candidates[part], -values[part]))]
    return values[order][None, :].astype(np.float32), candidates[order][None, :].astype(np.int64)
