"""Annoy vector index with the ``dot`` metric, memory-mapped when loaded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

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

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top ``k`` by inner product; rows are padded with id -1 when short."""
        self._build()
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dimension)
        k = min(k, self._count)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        search_k = self.search_k if self.search_k > 0 else self.trees * max(k, 1) * 10
        for row, query in enumerate(queries):
            found, dots = self._index.get_nns_by_vector(query.tolist(), k, search_k, include_distances=True)
            ids[row, : len(found)] = found
            scores[row, : len(found)] = dots
        return scores, ids

    def save(self, directory: Path) -> None:
        """Build (if needed) and write ``annoy.ann`` and ``annoy.json``."""
        directory.mkdir(parents=True, exist_ok=True)
        self._build()
        self._index.save(str(directory / self.FILE))
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
        index._count = index._index.get_n_items()
        index._built = True
        return index

    def describe(self) -> dict[str, Any]:
        """Dimension, metric, trees and search_k."""
        return {"dimension": self.dimension, "metric": "dot", "trees": self.trees, "search_k": self.search_k}

    def __len__(self) -> int:
        return self._count
