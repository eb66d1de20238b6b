"""USearch vector index: HNSW by inner product, vectors stored as f32, i8 or b1, served memory-mapped (``view``).

``f32`` keeps the float vectors in the graph and scores exactly. ``i8`` and ``b1`` store quantized vectors in
the graph (4x and 32x smaller) and rescore ``rescore`` candidates exactly with the float vectors, kept
beside the graph in ``vectors.npy`` and memory-mapped on load. ``i8`` vectors are scaled by one global factor
into USearch's [-1, 1] range (inner-product order is unchanged); ``b1`` keeps one sign bit per dimension and
finds candidates by Hamming distance.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from indexing.chunks import Chunk
from mlsearch.errors import BackendUnavailableError, IndexNotBuiltError

try:  # onnxruntime must be imported before usearch in one process (the other order crashes)
    import onnxruntime  # noqa: F401
except ImportError:  # pragma: no cover - optional
    pass
try:
    from usearch.index import Index as _Index
except ImportError:  # pragma: no cover - usearch is a core dependency
    _Index = None  # type: ignore[assignment,misc]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class UsearchConfig:
    """USearch options (``MLSEARCH_USEARCH_<OPTION>``): stored vector type, HNSW graph, search, rescoring."""

    dtype: Literal["f32", "i8", "b1"] = Field(
        default="f32", description="Vector storage: f32 (exact), i8 or b1 (quantized, then rescored)."
    )
    connectivity: int = Field(default=16, ge=2, description="HNSW edges per node.")
    expansion_add: int = Field(default=128, ge=1, description="Candidate list length while adding.")
    expansion_search: int = Field(default=128, ge=1, description="Candidate list length per query.")
    rescore: int = Field(default=100, ge=1, le=10_000, description="Candidates rescored exactly (i8, b1).")


class UsearchIndex:
    """A USearch HNSW graph over inner products; ``dtype`` picks f32, i8 (rescored) or b1 (rescored)."""

    name: ClassVar[str] = "usearch"
    config_type: ClassVar[type[UsearchConfig]] = UsearchConfig
    FILE = "usearch.index"
    VECTORS = "vectors.npy"

    def __init__(self, dimension: int, config: UsearchConfig) -> None:
        if _Index is None:
            raise BackendUnavailableError("usearch", "install usearch")
        self.dimension = dimension
        self.dtype = config.dtype
        self.connectivity = config.connectivity
        self.expansion_add = config.expansion_add
        self.expansion_search = config.expansion_search
        self.rescore = config.rescore
        self.scale = 0.0  # i8: the factor that brings the vectors into [-1, 1], set by the first batch
        self._floats: list[np.ndarray] | np.ndarray = []
        self._index = self._new()

    def _new(self) -> Any:
        binary = self.dtype == "b1"
        return _Index(
            ndim=self.dimension, metric="hamming" if binary else "ip", dtype=self.dtype,
            connectivity=self.connectivity, expansion_add=self.expansion_add, expansion_search=self.expansion_search,
        )

    @property
    def quantized(self) -> bool:
        """Whether the graph holds quantized vectors (and candidates are rescored)."""
        return self.dtype != "f32"

    def _encode(self, vectors: np.ndarray, scale: float) -> np.ndarray:
        if self.dtype == "b1":
            return np.packbits(vectors > 0, axis=1)
        return vectors * scale if self.dtype == "i8" else vectors

    def add(self, vectors: np.ndarray, chunks: Sequence[Chunk] = ()) -> None:
        """Append vectors (row ``i`` gets id ``len(self) + i``)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(f"expected vectors of shape (n, {self.dimension}), got {vectors.shape}")
        if not isinstance(self._floats, list):
            raise RuntimeError("a loaded USearch index is read-only; build a new one instead of adding to it")
        if len(vectors) == 0:
            return
        if self.dtype == "i8" and self.scale == 0.0:
            self.scale = 1.0 / max(float(np.abs(vectors).max()), 1e-12)
        keys = np.arange(len(self), len(self) + len(vectors), dtype=np.uint64)
        self._index.add(keys, self._encode(vectors, self.scale))
        if self.quantized:
            self._floats.append(vectors)

    def _float_vectors(self) -> np.ndarray:
        if isinstance(self._floats, list):
            self._floats = [np.vstack(self._floats)] if self._floats else []
            return self._floats[0] if self._floats else np.zeros((0, self.dimension), np.float32)
        return self._floats

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The float vectors at positions ``ids``: the kept float copies of a quantized index, else the graph's.

        Raises:
            ValueError: An id out of range.
        """
        ids = np.asarray(ids, np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"positions out of range 0..{len(self) - 1}: {ids.tolist()}")
        if ids.size == 0:
            return np.zeros((0, self.dimension), np.float32)
        if self.quantized:
            return np.asarray(self._float_vectors()[ids], np.float32)
        found = self._index.get(ids.astype(np.uint64), dtype=np.float32)
        return np.asarray(found, np.float32).reshape(-1, self.dimension)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` highest inner products per query (rows padded with id -1 when short)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dimension)
        width = max(0, min(k, len(self)))
        scores = np.full((len(queries), width), -np.inf, np.float32)
        ids = np.full((len(queries), width), -1, np.int64)
        if width == 0:
            return scores, ids
        fetch = min(len(self), max(width, self.rescore)) if self.quantized else width
        query_scale = 1.0 / np.abs(queries).max(axis=1, keepdims=True).clip(1e-12)
        found = self._index.search(self._encode(queries, query_scale), fetch)
        keys = np.atleast_2d(found.keys).astype(np.int64)
        distances = np.atleast_2d(found.distances)
        batch = hasattr(found, "counts")  # one query gives Matches, not BatchMatches
        counts = np.atleast_1d(found.counts) if batch else np.array([keys.shape[1]])
        floats = self._float_vectors() if self.quantized else None
        for row, query in enumerate(queries):
            candidates = keys[row, : counts[row]]
            exact: np.ndarray
            if floats is None:
                exact = 1.0 - distances[row, : counts[row]]
            else:
                exact = np.asarray(floats[candidates], np.float32) @ query
            order = np.argsort(-exact, kind="stable")[:width]
            ids[row, : len(order)] = candidates[order]
            scores[row, : len(order)] = exact[order]
        return scores, ids

    def save(self, directory: Path) -> None:
        """Write ``usearch.index``, ``usearch.json`` and, when quantized, the float ``vectors.npy``."""
        directory.mkdir(parents=True, exist_ok=True)
        self._index.save(str(directory / self.FILE))
        if self.quantized:
            np.save(directory / self.VECTORS, self._float_vectors(), allow_pickle=False)
        (directory / "usearch.json").write_text(json.dumps(self.describe()))

    @classmethod
    def load(cls, directory: Path, config: UsearchConfig) -> Self:
        """Serve a saved index memory-mapped (USearch ``view``; nothing is copied into memory)."""
        path = directory / cls.FILE
        if not path.is_file():
            raise IndexNotBuiltError(f"no USearch index in {directory}")
        info = json.loads((directory / "usearch.json").read_text())
        index = cls(int(info["dimension"]), config)
        index.dtype, index.scale = info["dtype"], float(info["scale"])
        index.connectivity, index.expansion_add = int(info["connectivity"]), int(info["expansion_add"])
        index._index = _Index.restore(str(path), view=True)
        index._index.expansion_search = index.expansion_search
        index._floats = (np.load(directory / cls.VECTORS, mmap_mode="r", allow_pickle=False) if index.quantized
                         else np.zeros((0, index.dimension), np.float32))
        return index

    def describe(self) -> dict[str, Any]:
        """Dimension, metric, dtype, graph and search parameters."""
        return {
            "dimension": self.dimension, "metric": "inner_product", "dtype": self.dtype, "scale": self.scale,
            "connectivity": self.connectivity, "expansion_add": self.expansion_add,
            "expansion_search": self.expansion_search, "rescore": self.rescore if self.quantized else 0,
        }

    def __len__(self) -> int:
        return int(len(self._index))
