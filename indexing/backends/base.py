"""The two small contracts that every index backend fills in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np

from indexing.chunks import Chunk
from indexing.filters import ChunkFilter

Hits = tuple[np.ndarray, np.ndarray]
"""``(scores, ids)``: float32 and int64 arrays of shape ``(n_queries, k)``; missing hits have id -1."""
Ranked = list[tuple[int, float]]
"""``(position, score)`` pairs, best first."""


def ranked_hits(hits: Hits) -> Ranked:
    """The first query's hits as ``(position, score)`` pairs, best first; missing hits (id -1) are left out."""
    scores, ids = hits
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


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
class VectorSource(Protocol):
    """A vector backend that gives back the float vectors it holds (pseudo-relevance feedback reads them).

    A backend without it (or one that raises) leaves the searcher to embed the chunks' texts again.
    """

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The float vectors at positions ``ids``, shape ``(len(ids), dimension)``, in the order of ``ids``.

        Raises:
            ValueError: It cannot give these vectors back (an id out of range, or a lossy index without
                float copies).
        """
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
class ExpandingKeywordIndex(Protocol):
    """A keyword backend that expands a query with terms of given feedback texts (pseudo-relevance feedback)."""

    def feedback_search(self, query: str, feedback: Sequence[int], k: int, terms: int, weight: float) -> Hits:
        """The ``k`` best texts for the query expanded by the ``terms`` heaviest terms of the ``feedback``
        texts, the original terms weighing ``weight``; arrays of shape ``(1, <=k)``."""
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


@dataclass(frozen=True)
class Piece:
    """A run of consecutive positions in a new index version: kept from the previous version, or fresh.

    Attributes:
        count: How many positions the run covers.
        start: The run's first position in the previous version, or None for the next ``count`` fresh items
            (the chunks an update embedded anew, in order).
    """

    count: int
    start: int | None = None


def splice_rows(previous: np.ndarray, fresh: np.ndarray, pieces: Sequence[Piece]) -> np.ndarray:
    """The new version's rows: runs of ``previous`` rows and of ``fresh`` rows, in the order of ``pieces``.

    Example:
        >>> splice_rows(np.arange(4), np.array([9]), [Piece(2, 0), Piece(1), Piece(1, 3)]).tolist()
        [0, 1, 9, 3]
    """
    parts, used = [], 0
    for piece in pieces:
        if piece.start is None:
            parts.append(fresh[used : used + piece.count])
            used += piece.count
        else:
            parts.append(previous[piece.start : piece.start + piece.count])
    if used != len(fresh):
        raise ValueError(f"the pieces take {used} fresh rows, {len(fresh)} were given")
    if not parts:
        return np.zeros((0, *previous.shape[1:]), previous.dtype)
    return np.concatenate(parts)


@runtime_checkable
class SplicingKeywordIndex(Protocol):
    """A keyword backend that derives a new version from its previous one, reading only the fresh texts.

    Called on the previous version's index (from :meth:`KeywordIndex.load`); :meth:`describe` then says in
    ``pending_refit`` how many texts a later full :meth:`KeywordIndex.build` would treat differently (0 when
    the spliced index already equals a clean build).
    """

    def splice(self, pieces: Sequence[Piece], fresh: Sequence[str]) -> None:
        """Become the index of the texts that ``pieces`` lay out (kept runs and ``fresh`` texts)."""
        ...


@runtime_checkable
class SplicingVectorIndex(Protocol):
    """A vector backend that derives a new version from its previous one, adding only the fresh vectors."""

    def splice(self, pieces: Sequence[Piece], fresh: np.ndarray) -> None:
        """Become the index of the vectors that ``pieces`` lay out (kept runs and ``fresh`` rows)."""
        ...
