"""FAISS vector index, inner product, any factory string (``Flat``, ``HNSW32``, ``IVF64,Flat``), optionally quantized.

The ``quantization`` option keeps the vectors in less memory: ``int8`` uses FAISS's 8-bit scalar quantizer (``Flat``
becomes ``SQ8``, ``IVFn,Flat`` becomes ``IVFn,SQ8``, ``HNSWm`` becomes ``HNSWm_SQ8``: a quarter of the float
size), ``binary`` keeps one sign bit per dimension (a thirty-second, searched by Hamming distance, with an
``HNSW`` graph when the factory asks for one). Both fetch ``rescore`` candidates and score them again
exactly with the float vectors, which are kept beside the index in ``vectors.f32`` and memory-mapped, so they
cost disk but only the pages that rescoring touches in memory.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from indexing.backends.base import Piece, splice_rows
from indexing.chunks import Chunk
from mlsearch.errors import BackendUnavailableError, IndexNotBuiltError

try:
    import faiss
except ImportError:  # pragma: no cover - faiss-cpu is a core dependency
    faiss = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)
_IVF = re.compile(r"IVF(\d+)")
_HNSW = re.compile(r"^HNSW(\d+)")
_BARE_HNSW = re.compile(r"^HNSW(?!\d)")
FLOATS_FILE = "vectors.f32"


def hnsw_factory(factory: str, m: int) -> str:
    """``factory`` with ``m`` edges per node when it names ``HNSW`` without a number (unchanged otherwise)."""
    return _BARE_HNSW.sub(f"HNSW{m}", factory, count=1)


def quantized_factory(factory: str, quantization: str) -> str:
    """The FAISS factory string for ``int8`` scalar quantization of ``factory`` (unchanged otherwise)."""
    if quantization != "int8" or "SQ" in factory or "PQ" in factory:
        return factory
    hnsw = _HNSW.match(factory)
    if hnsw and "," not in factory:
        return f"HNSW{hnsw.group(1)}_SQ8"
    return factory.replace("Flat", "SQ8") if "Flat" in factory else f"{factory},SQ8"


def binary_codes(vectors: np.ndarray) -> np.ndarray:
    """One bit per dimension (1 where the value is positive), packed into bytes, as ``ubinary`` quantization."""
    return np.packbits(np.asarray(vectors) > 0, axis=1)


LARGE_GRAPH = 500_000
"""Vectors past which an HNSW graph is searched with a wider candidate list by default."""


def default_ef_search(vectors: int) -> int:
    """efSearch when none is configured: 128 up to ``LARGE_GRAPH`` vectors, 256 beyond (recall holds as the
    graph grows: measured 0.988 at 100K with 128, 0.947 at 1M with 128 and 0.971 with 256)."""
    return 128 if vectors <= LARGE_GRAPH else 256


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class FaissConfig:
    """FAISS options (``MLSEARCH_FAISS_<OPTION>``): factory string, quantization, HNSW graph and search."""

    factory: str = Field(default="Flat", description="FAISS index factory string: Flat, HNSW32, IVF64,Flat.")
    quantization: Literal["none", "int8", "binary"] = Field(
        default="none",
        description="none: float vectors; int8: 8-bit scalar quantizer (SQ8); binary: one bit per dimension. "
        "Quantized indexes rescore `rescore` candidates with the float vectors.",
    )
    rescore: int = Field(default=100, ge=1, le=10_000, description="Candidates rescored exactly (quantized).")
    nprobe: int = Field(default=16, ge=1, description="Inverted lists visited per query (IVF).")
    hnsw_ef_search: int | None = Field(
        default=None, ge=1,
        description="HNSW candidates searched per query; unset: 128 up to 500,000 vectors, 256 beyond "
        "(bench.scale: recall@10 0.947 at 128 and 0.971 at 256 over 1M chunks, 0.988 at 128 over 100K).",
    )
    hnsw_m: int = Field(
        default=32, ge=2, le=256, description="HNSW edges per node when the factory says `HNSW` without a number."
    )
    hnsw_ef_construction: int = Field(
        default=200, ge=1, description="HNSW candidates per insertion (build; bench.scale chose 200 at 100K chunks)."
    )


class FaissIndex:
    """A FAISS index with ``METRIC_INNER_PRODUCT``; the factory string comes from its config."""

    name: ClassVar[str] = "faiss"
    config_type: ClassVar[type[FaissConfig]] = FaissConfig
    FILE = "faiss.index"

    def __init__(self, dimension: int, config: FaissConfig) -> None:
        if faiss is None:
            raise BackendUnavailableError("faiss", "install faiss-cpu")
        self.dimension = dimension
        self.factory = config.factory
        self.quantization = config.quantization
        self.rescore = config.rescore
        self.config = config
        self._index: Any = None
        self._floats: np.ndarray | None = None  # memory-mapped float vectors, for rescoring (after load)
        self._spool: Any = None  # float vectors written while adding, for rescoring (before save)
        self._count = 0

    def _create(self, n_train: int) -> Any:
        index = self._create_index(n_train)
        graph = index if self.quantization == "binary" else faiss.downcast_index(index)
        if hasattr(graph, "hnsw"):
            graph.hnsw.efConstruction = self.config.hnsw_ef_construction
        return index

    def _create_index(self, n_train: int) -> Any:
        self.factory = hnsw_factory(self.factory, self.config.hnsw_m)
        if self.quantization == "binary":
            bits = 8 * ((self.dimension + 7) // 8)
            hnsw = _HNSW.match(self.factory)
            self.factory = f"B{'HNSW' + hnsw.group(1) if hnsw else 'Flat'}"
            return faiss.IndexBinaryHNSW(bits, int(hnsw.group(1))) if hnsw else faiss.IndexBinaryFlat(bits)
        factory = quantized_factory(self.factory, self.quantization)
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
        """Append vectors; an IVF index (or a scalar quantizer) is trained on the first batch."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(f"expected vectors of shape (n, {self.dimension}), got {vectors.shape}")
        if self._index is None:
            self._index = self._create(len(vectors))
        if self.quantization == "binary":
            self._index.add(binary_codes(vectors))
        else:
            if not self._index.is_trained:
                self._index.train(vectors)
            self._index.add(vectors)
        if self.quantization != "none":
            if self._spool is None:
                self._spool = tempfile.TemporaryFile()
            self._spool.write(vectors.tobytes())
        self._count += len(vectors)
        self._tune()

    def splice(self, pieces: Sequence[Piece], fresh: np.ndarray) -> None:
        """Rebuild from this index's own float vectors (kept runs) and ``fresh`` rows, laid out as ``pieces`` say.

        Raises:
            ValueError: The index cannot give its vectors back (an IVF index without a direct map), or the pieces
                do not fit it (the index is then left empty); build it from the stored vectors instead.
        """
        total = 0 if self._index is None else int(self._index.ntotal)
        if total == 0:
            previous = np.zeros((0, self.dimension), np.float32)
        elif self.quantization == "none":
            try:
                previous = self._index.reconstruct_n(0, total)
            except RuntimeError as exc:
                raise ValueError(f"FAISS index {self.factory} cannot reconstruct its vectors: {exc}") from exc
        else:
            previous = np.asarray(self._float_vectors())
        # the old index goes before the new rows are laid out, and the old rows before the new index is filled, so
        # that at most two copies of the vectors are held at once (four before: 4.4 GB at 1M chunks)
        self.factory, self._index, self._floats, self._spool, self._count = self.config.factory, None, None, None, 0
        vectors = splice_rows(previous, np.asarray(fresh, np.float32).reshape(-1, self.dimension), pieces)
        del previous
        self.add(vectors)

    def _tune(self) -> None:
        index = self._index if self.quantization == "binary" else faiss.downcast_index(self._index)
        if hasattr(index, "nprobe"):
            index.nprobe = self.config.nprobe
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = max(self._ef_search(), self.rescore, 1)

    def _ef_search(self) -> int:
        """The configured efSearch, or the size-aware default when none is set."""
        if self.config.hnsw_ef_search is not None:
            return self.config.hnsw_ef_search
        return default_ef_search(len(self))

    def _rescored(self, queries: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products of each query with its candidates' float vectors, best ``k`` first."""
        floats = self._float_vectors()
        scores = np.full((len(queries), k), -np.inf, np.float32)
        out = np.full((len(queries), k), -1, np.int64)
        for row, query in enumerate(queries):
            candidates = np.unique(ids[row][ids[row] >= 0])
            exact = floats[candidates] @ query
            order = np.lexsort((candidates, -exact))[:k]
            scores[row, : len(order)] = exact[order]
            out[row, : len(order)] = candidates[order]
        return scores, out

    def _float_vectors(self) -> np.ndarray:
        if self._floats is None:  # searched before save: read the spooled vectors
            self._spool.flush()
            self._spool.seek(0)
            return np.frombuffer(self._spool.read(), np.float32).reshape(-1, self.dimension)
        return self._floats

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The float vectors at positions ``ids``: the kept float copies of a quantized index, else FAISS's own
        (an IVF index gets a direct map on first use).

        Raises:
            ValueError: An id out of range, or an index FAISS cannot reconstruct from.
        """
        ids = np.asarray(ids, np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"positions out of range 0..{len(self) - 1}: {ids.tolist()}")
        if ids.size == 0:
            return np.zeros((0, self.dimension), np.float32)
        if self.quantization != "none":
            return np.asarray(self._float_vectors()[ids], np.float32)
        try:
            return np.asarray(self._index.reconstruct_batch(ids), np.float32).reshape(-1, self.dimension)
        except RuntimeError:
            try:
                faiss.extract_index_ivf(self._index).make_direct_map()
                return np.asarray(self._index.reconstruct_batch(ids), np.float32).reshape(-1, self.dimension)
            except RuntimeError as exc:
                raise ValueError(f"FAISS index {self.factory} cannot give its vectors back: {exc}") from exc

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` highest inner products per query; ids are -1 past the end of the index."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dimension)
        if self._index is None or self._index.ntotal == 0:
            n = len(queries)
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        k = min(k, self._index.ntotal)
        if self.quantization == "none":
            scores, ids = self._index.search(queries, k)
            return scores.astype(np.float32), ids.astype(np.int64)
        depth = min(max(k, self.rescore), self._index.ntotal)
        if self.quantization == "binary":
            _, ids = self._index.search(binary_codes(queries), depth)
        else:
            _, ids = self._index.search(queries, depth)
        return self._rescored(queries, ids.astype(np.int64), k)

    def save(self, directory: Path) -> None:
        """Write ``faiss.index``, ``faiss.json`` and, when quantized, the float vectors for rescoring."""
        directory.mkdir(parents=True, exist_ok=True)
        if self._index is None:
            self._index = self._create(0)
        if self.quantization == "binary":
            faiss.write_index_binary(self._index, str(directory / self.FILE))
        else:
            faiss.write_index(self._index, str(directory / self.FILE))
        if self.quantization != "none":
            with (directory / FLOATS_FILE).open("wb") as out:
                if self._spool is not None:
                    self._spool.flush()
                    self._spool.seek(0)
                    shutil.copyfileobj(self._spool, out, 1 << 22)
        (directory / "faiss.json").write_text(json.dumps(self.describe()))

    @staticmethod
    def scale_advice(described: Mapping[str, Any], chunks: int, exact_limit: int) -> list[str]:
        """What to change for an index of ``chunks`` chunks built as ``described`` (its manifest entry), when exact
        search past ``exact_limit`` chunks, or float vectors past ten times that, cost too much."""
        advice = []
        if chunks > exact_limit and str(described.get("factory", "")) in {"Flat", "SQ8", "BFlat"}:
            advice.append(
                f"{chunks:,} chunks: exact FAISS search scans every vector; set MLSEARCH_FAISS_FACTORY=HNSW32 "
                f"(or IVF{int(4 * chunks ** 0.5)},Flat) and rebuild for millisecond searches"
            )
        if chunks > 10 * exact_limit and described.get("quantization", "none") == "none":
            advice.append("set MLSEARCH_FAISS_QUANTIZATION=int8 to hold a quarter of the vector memory "
                          "(candidates are rescored with the float vectors)")
        return advice

    @classmethod
    def load(cls, directory: Path, config: FaissConfig) -> Self:
        """Read the index back, memory-mapped where FAISS allows it (and the rescoring floats always)."""
        path = directory / cls.FILE
        if not path.is_file():
            raise IndexNotBuiltError(f"no FAISS index in {directory}")
        info = json.loads((directory / "faiss.json").read_text())
        quantization = info.get("quantization", "none")
        index = cls(int(info["dimension"]), replace(config, quantization=quantization))
        index.factory = info["factory"]
        index.rescore = int(info.get("rescore", config.rescore))
        read = faiss.read_index_binary if quantization == "binary" else faiss.read_index
        try:
            index._index = read(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            index._index = read(str(path))
        index._count = int(index._index.ntotal)
        if quantization != "none":
            floats = directory / FLOATS_FILE
            if not floats.is_file() or floats.stat().st_size != 4 * index.dimension * index._count:
                raise IndexNotBuiltError(f"FAISS index in {directory} lacks its float vectors ({FLOATS_FILE})")
            index._floats = (
                np.memmap(floats, np.float32, mode="r", shape=(index._count, index.dimension))
                if index._count else np.zeros((0, index.dimension), np.float32)
            )
        index._tune()
        return index

    def describe(self) -> dict[str, Any]:
        """Factory string, quantization, dimension, metric and search parameters."""
        return {
            "factory": self.factory,
            "quantization": self.quantization,
            "rescore": self.rescore if self.quantization != "none" else 0,
            "dimension": self.dimension,
            "metric": "inner_product",
            "nprobe": self.config.nprobe,
            "hnsw_ef_search": self._ef_search(),
            **({"hnsw_ef_construction": self._ef_construction()} if "HNSW" in self.factory else {}),
        }

    def _ef_construction(self) -> int:
        """The graph's build-time candidate list (as built, once built; as configured before)."""
        if self._index is not None:
            graph = self._index if self.quantization == "binary" else faiss.downcast_index(self._index)
            if hasattr(graph, "hnsw"):
                return int(graph.hnsw.efConstruction)
        return self.config.hnsw_ef_construction

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)
