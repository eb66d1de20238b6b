"""FAISS vector index, inner product, any factory string (``Flat``, ``HNSW32``, ``IVF64,Flat``)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from indexing.chunks import Chunk
from mlsearch.errors import BackendUnavailableError, IndexNotBuiltError
from mlsearch.settings import Settings

try:
    import faiss
except ImportError:  # pragma: no cover - faiss-cpu is a core dependency
    faiss = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)
_IVF = re.compile(r"IVF(\d+)")


class FaissIndex:
    """A FAISS index with ``METRIC_INNER_PRODUCT``; the factory string comes from the settings."""

    name: ClassVar[str] = "faiss"
    FILE = "faiss.index"

    def __init__(self, dimension: int, settings: Settings) -> None:
        if faiss is None:
            raise BackendUnavailableError("faiss", "install faiss-cpu")
        self.dimension = dimension
        self.factory = settings.faiss_factory
        self.settings = settings
        self._index: Any = None

    def _create(self, n_train: int) -> Any:
        factory = self.factory
        match = _IVF.search(factory)
        if match and n_train < 39 * int(match.group(1)):
            nlist = max(1, int(np.sqrt(n_train)))
            factory = _IVF.sub(f"IVF{nlist}", factory, count=1)
            logger.info("FAISS: %d vectors are too few for %s; using %s", n_train, self.factory, factory)
        try:
            index = faiss.index_factory(self.dimension, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ValueError(f"invalid FAISS factory string {self.factory!r}") from exc
        self.factory = factory
        return index

    def add(self, vectors: np.ndarray, chunks: Sequence[Chunk] = ()) -> None:
        """Append vectors; an IVF index is trained on the first batch."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(f"expected vectors of shape (n, {self.dimension}), got {vectors.shape}")
        if self._index is None:
            self._index = self._create(len(vectors))
        if not self._index.is_trained:
            self._index.train(vectors)
        self._index.add(vectors)
        self._tune()

    def _tune(self) -> None:
        index = faiss.downcast_index(self._index)
        if hasattr(index, "nprobe"):
            index.nprobe = self.settings.faiss_nprobe
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = max(self.settings.faiss_hnsw_ef_search, 1)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` highest inner products per query; ids are -1 past the end of the index."""
        if self._index is None or self._index.ntotal == 0:
            n = len(queries)
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dimension)
        scores, ids = self._index.search(queries, min(k, self._index.ntotal))
        return scores.astype(np.float32), ids.astype(np.int64)

    def save(self, directory: Path) -> None:
        """Write ``faiss.index`` and ``faiss.json`` into the directory."""
        directory.mkdir(parents=True, exist_ok=True)
        if self._index is None:
            self._index = self._create(0)
        faiss.write_index(self._index, str(directory / self.FILE))
        (directory / "faiss.json").write_text(json.dumps(self.describe()))

    @classmethod
    def load(cls, directory: Path, settings: Settings) -> Self:
        """Read the index back, memory-mapped where FAISS allows it."""
        path = directory / cls.FILE
        if not path.is_file():
            raise IndexNotBuiltError(f"no FAISS index in {directory}")
        info = json.loads((directory / "faiss.json").read_text())
        index = cls(int(info["dimension"]), settings)
        index.factory = info["factory"]
        try:
            index._index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            index._index = faiss.read_index(str(path))
        index._tune()
        return index

    def describe(self) -> dict[str, Any]:
        """Factory string, dimension, metric and search parameters."""
        return {
            "factory": self.factory,
            "dimension": self.dimension,
            "metric": "inner_product",
            "nprobe": self.settings.faiss_nprobe,
            "hnsw_ef_search": self.settings.faiss_hnsw_ef_search,
        }

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)
