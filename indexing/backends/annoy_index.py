"""Annoy vector index with the ``dot`` metric, memory-mapped when loaded.

An Annoy forest cannot change once built, and building one over 50,000 vectors takes many seconds. A document
update therefore splices an overlay instead (:meth:`AnnoyIndex.splice`): the previous forest stays as it is
(hard-linked into the new version), ``remap.npy`` maps its items to their new positions (-1 for deleted
chunks), and the fresh vectors are kept beside it (``fresh.npy``, ``fresh_positions.npy``) and scored exactly.
``pending_refit`` counts the chunks added or removed since the forest was built; the update's refit builds a
new forest, equal to a clean build's.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from indexing.backends.base import Piece
from indexing.chunks import Chunk
from mlsearch.errors import BackendUnavailableError, IndexNotBuiltError

try:
    from annoy import AnnoyIndex as _Annoy
except ImportError:  # pragma: no cover - annoy is a core dependency
    _Annoy = None  # type: ignore[assignment,misc]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class AnnoyConfig:
    """Annoy options (``MLSEARCH_ANNOY_<OPTION>``): trees built and nodes inspected per search."""

    trees: int = Field(default=50, ge=1, description="Trees built.")
    search_k: int = Field(default=-1, description="Annoy search_k; -1 means trees * k * 10.")


class AnnoyIndex:
    """An Annoy forest over inner products; built on first search or save, read-only after."""

    name: ClassVar[str] = "annoy"
    config_type: ClassVar[type[AnnoyConfig]] = AnnoyConfig
    FILE = "annoy.ann"

    def __init__(self, dimension: int, config: AnnoyConfig) -> None:
        if _Annoy is None:
            raise BackendUnavailableError("annoy", "install annoy")
        self.dimension = dimension
        self.trees = config.trees
        self.search_k = config.search_k
        self._index = _Annoy(dimension, "dot")
        self._index.set_seed(42)
        self._count = 0
        self._built = False
        self._file: Path | None = None  # the forest's file, when loaded
        self._remap: np.ndarray | None = None  # overlay: forest item -> position (-1: deleted); None: no overlay
        self._fresh = np.zeros((0, dimension), np.float32)
        self._fresh_positions = np.zeros(0, np.int64)
        self._dead = 0
        self._pending_refit = 0

    def add(self, vectors: np.ndarray, chunks: Sequence[Chunk] = ()) -> None:
        """Append vectors; an Annoy index cannot grow once built."""
        if self._built:
            raise RuntimeError("an Annoy index cannot be added to after it is built")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(f"expected vectors of shape (n, {self.dimension}), got {vectors.shape}")
        for row in vectors:
            self._index.add_item(self._count, row.tolist())
            self._count += 1

    def _build(self) -> None:
        if not self._built:
            self._index.build(self.trees, n_jobs=-1)
            self._built = True

    def splice(self, pieces: Sequence[Piece], fresh: np.ndarray) -> None:
        """Keep this forest and overlay the layout of ``pieces``: kept items move, ``fresh`` rows are kept aside.

        Raises:
            ValueError: The index was not loaded from a file (nothing to link into the next version).
        """
        if self._file is None:
            raise ValueError("only a saved Annoy index is spliced; build this one from the vectors")
        moved = np.full(self._count, -1, np.int64)  # this version's position -> the next one's
        added: list[np.ndarray] = []
        position = 0
        for piece in pieces:
            if piece.start is None:
                added.append(np.arange(position, position + piece.count))
            else:
                moved[piece.start : piece.start + piece.count] = np.arange(position, position + piece.count)
            position += piece.count
        remap = self._remap if self._remap is not None else np.arange(self._index.get_n_items())
        self._remap = np.where(remap >= 0, moved[np.maximum(remap, 0)], -1)
        fresh = np.asarray(fresh, np.float32).reshape(-1, self.dimension)
        kept = moved[self._fresh_positions]
        self._fresh = np.concatenate([self._fresh[kept >= 0], fresh])
        self._fresh_positions = np.concatenate([kept[kept >= 0], *added]).astype(np.int64)
        self._pending_refit += len(fresh) + self._count - int((moved >= 0).sum())
        self._count = position
        self._dead = int((self._remap < 0).sum())

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top ``k`` by inner product; rows are padded with id -1 when short."""
        self._build()
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dimension)
        k = min(k, self._count)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        asked = k + self._dead  # an overlay asks past the deleted items
        search_k = self.search_k if self.search_k > 0 else self.trees * max(asked, 1) * 10
        for row, query in enumerate(queries):
            items, values = self._index.get_nns_by_vector(query.tolist(), asked, search_k, include_distances=True)
            found, dots = np.asarray(items, np.int64), np.asarray(values, np.float32)
            if self._remap is not None:
                found, dots = self._overlay(query, found, dots, k)
            ids[row, : len(found)] = found[:k]
            scores[row, : len(found)] = dots[:k]
        return scores, ids

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The float vectors at positions ``ids`` (an overlay's fresh rows from the overlay, others from the forest).

        Raises:
            ValueError: An id out of range.
        """
        ids = np.asarray(ids, np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= self._count):
            raise ValueError(f"positions out of range 0..{self._count - 1}: {ids.tolist()}")
        out = np.zeros((ids.size, self.dimension), np.float32)
        for row, position in enumerate(ids.tolist()):
            if self._remap is None:
                out[row] = self._index.get_item_vector(position)
                continue
            fresh = np.flatnonzero(self._fresh_positions == position)
            if fresh.size:
                out[row] = self._fresh[fresh[0]]
            else:
                out[row] = self._index.get_item_vector(int(np.flatnonzero(self._remap == position)[0]))
        return out

    def _overlay(self, query: np.ndarray, found: np.ndarray, dots: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The forest's hits at their new positions (deleted ones dropped) merged with the exact fresh hits."""
        assert self._remap is not None
        positions = self._remap[found] if len(found) else found
        alive = positions >= 0
        positions = np.concatenate([positions[alive], self._fresh_positions])
        values = np.concatenate([dots[alive], self._fresh @ query]).astype(np.float32)
        order = np.lexsort((positions, -values))[:k]
        return positions[order], values[order]

    def save(self, directory: Path) -> None:
        """Build (if needed) and write ``annoy.ann`` and ``annoy.json``."""
        directory.mkdir(parents=True, exist_ok=True)
        self._build()
        if self._remap is None:
            self._index.save(str(directory / self.FILE))
        else:  # an overlay: the forest is the previous version's file, unchanged
            assert self._file is not None
            try:
                os.link(self._file, directory / self.FILE)
            except OSError:
                shutil.copyfile(self._file, directory / self.FILE)
            for name, values in (("remap.npy", self._remap), ("fresh.npy", self._fresh),
                                 ("fresh_positions.npy", self._fresh_positions)):
                np.save(directory / name, values, allow_pickle=False)
        (directory / "annoy.json").write_text(json.dumps(self.describe()))

    @classmethod
    def load(cls, directory: Path, config: AnnoyConfig) -> Self:
        """Memory-map a saved index (Annoy's ``load`` maps the file; nothing is copied)."""
        path = directory / cls.FILE
        if not path.is_file():
            raise IndexNotBuiltError(f"no Annoy index in {directory}")
        info = json.loads((directory / "annoy.json").read_text())
        index = cls(int(info["dimension"]), config)
        index.trees = int(info["trees"])
        index._index.load(str(path), prefault=False)
        index._count = int(info.get("count", index._index.get_n_items()))
        index._built = True
        index._file = path
        index._pending_refit = int(info.get("pending_refit", 0))
        if (directory / "remap.npy").is_file():
            index._remap = np.load(directory / "remap.npy", allow_pickle=False)
            index._fresh = np.load(directory / "fresh.npy", allow_pickle=False)
            index._fresh_positions = np.load(directory / "fresh_positions.npy", allow_pickle=False)
            index._dead = int((index._remap < 0).sum())
        return index

    def describe(self) -> dict[str, Any]:
        """Dimension, metric, trees and search_k (and, for an overlay, its size and what a refit would change)."""
        info: dict[str, Any] = {"dimension": self.dimension, "metric": "dot", "trees": self.trees,
                                "search_k": self.search_k}
        if self._remap is not None:
            info |= {"count": self._count, "overlay_fresh": len(self._fresh_positions), "overlay_deleted": self._dead,
                     "pending_refit": self._pending_refit}
        return info

    def __len__(self) -> int:
        return self._count
