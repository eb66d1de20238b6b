"""The two small contracts that every index backend fills in."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np

from indexing.chunks import Chunk
from mlsearch.settings import Settings

Hits = tuple[np.ndarray, np.ndarray]
"""``(scores, ids)``: float32 and int64 arrays of shape ``(n_queries, k)``; missing hits have id -1."""


@runtime_checkable
class VectorIndex(Protocol):
    """A dense index scored by inner product. Ids are the chunks' positions in the chunk store."""

    name: ClassVar[str]

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
    def load(cls, directory: Path, settings: Settings) -> Self:
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
    def load(cls, directory: Path, settings: Settings) -> Self:
        """Open an index written by :meth:`save`; never runs code from the files."""
        ...

    def describe(self) -> dict[str, Any]:
        """The settings this index was built with, for the manifest."""
        ...

    def __len__(self) -> int:
        """Number of texts held."""
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
