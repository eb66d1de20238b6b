"""The chunks' nearest-neighbour graph, saved with an index version (for score smoothing, :mod:`search.smoothing`).

Each chunk's ``STORED_NEIGHBOURS`` nearest other chunks by inner product of the stored (normalised) embeddings,
nearest first, with their similarities. A build computes it once the embeddings are stored:

- **exactly** up to ``EXACT_LIMIT`` chunks (FAISS flat search, a batch of rows at a time);
- past it, **approximately** with an inverted file of 8-bit codes (FAISS ``IVF{4·√n},SQ8``, ``IVF_PROBES``
  lists searched per chunk), whose cost grows as n·√n rather than n² and whose memory is a quarter of the
  vectors' (measured by ``python -m bench.graph``).

A document update **splices** the previous version's graph rather than computing it again (streaming the new
version's vectors from the chunk store rather than holding them all): kept chunks keep
their lists (renumbered) and take in the fresh chunks that come nearer; every fresh chunk is searched exactly
over the whole new version. A chunk that lost a neighbour to a deleted chunk is searched again exactly in an
exact graph, so that a splice of an exact graph is the exact graph of the new version (tested against a fresh
computation); in an approximate graph it is mended from its neighbours' neighbours, which costs a hundred
similarities rather than a search of the whole index.

A row with fewer neighbours than ``k`` (a tiny index, or duplicate vectors hiding each other) is padded with the
chunk's own position and a similarity of ``-inf``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexing.backends.base import Piece

logger = logging.getLogger(__name__)

GRAPH_DIR = "neighbours"
"""The graph's folder inside an index version."""
STORED_NEIGHBOURS = 10
"""Neighbours kept per chunk (smoothing reads the first ``MLSEARCH_SMOOTHING_NEIGHBOURS`` of them)."""
EXACT_LIMIT = 50_000
"""Largest index whose graph is computed exactly (about 15 s on 2 cores at the limit, growing with n²); past it,
the inverted file is searched."""
IVF_PROBES = 64
"""Inverted lists searched per chunk by the approximate graph (of 4·√n: 1.6% of the chunks at 1M). On the bundled
model's vectors of 50,000 chunks, 16 probes found 82% of the 3 nearest, 32 found 89% and 64 found 94%."""
IVF_TRAIN_PER_LIST = 40
"""Training vectors per inverted list (sampled evenly over the chunks)."""
ROW_BATCH = 1024
"""Chunks whose neighbours are searched at once."""
RECOMPUTE_SHARE = 0.25
"""A splice that would search more than this share of the chunks again computes the whole graph instead."""
ROWS_PER_SWEEP = 16_384
"""Rows searched exactly per pass over streamed vectors."""
SIMILARITY_BLOCK = 4_000_000
"""Most similarities a splice holds at once when it merges fresh chunks into kept lists (16 MB)."""

Batches = Callable[[], Iterator[tuple[int, np.ndarray]]]
"""Returns every embedding by position, a batch at a time, as ``(first position, float32 matrix)``."""


@dataclass(frozen=True)
class VectorSource:
    """Every embedding of an index by position, streamed in batches or read at chosen positions.

    Attributes:
        count: Rows.
        dimension: Columns.
        batches: Streams every row, a batch at a time.
        rows: The rows at the given positions (ascending or not), as a float32 matrix in that order.
    """

    count: int
    dimension: int
    batches: Batches
    rows: Callable[[np.ndarray], np.ndarray]

    @classmethod
    def of_matrix(cls, vectors: np.ndarray, batch: int = ROW_BATCH) -> VectorSource:
        """A source over an in-memory ``(n, d)`` matrix, streamed ``batch`` rows at a time."""
        data = np.ascontiguousarray(vectors, np.float32)
        count, dimension = data.shape if data.ndim == 2 else (0, 0)
        return cls(count, dimension, _matrix_batches(data, batch),
                   lambda positions: data[np.asarray(positions, np.int64)])


@dataclass(frozen=True)
class NeighbourGraph:
    """Each chunk's nearest chunks.

    Attributes:
        ids: ``(n, k)`` int32 positions, nearest first (padded with the row's own position).
        scores: ``(n, k)`` float32 inner products (``-inf`` for padding).
        method: ``exact`` or ``ivf`` (approximate), for the record.
        seconds: How long computing (or splicing) it took.
    """

    ids: np.ndarray
    scores: np.ndarray
    method: str
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def k(self) -> int:
        """Neighbours per chunk."""
        return int(self.ids.shape[1])

    def first(self, k: int) -> np.ndarray:
        """The ``k`` nearest of each chunk, as ``(n, min(k, self.k))`` int32 positions."""
        return self.ids[:, :k]

    def save(self, version_dir: Path) -> Path:
        """Write the graph into ``version_dir``'s graph folder (``ids.npy``, ``scores.npy``, ``graph.json``)."""
        folder = version_dir / GRAPH_DIR
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "ids.npy", np.ascontiguousarray(self.ids, np.int32))
        np.save(folder / "scores.npy", np.ascontiguousarray(self.scores, np.float32))
        (folder / "graph.json").write_text(json.dumps(self.describe(), indent=2) + "\n")
        return folder

    def describe(self) -> dict[str, object]:
        """What the graph is, as ``graph.json`` records it (:func:`graph_info` reads it back)."""
        return {"chunks": len(self), "k": self.k, "method": self.method, "seconds": round(self.seconds, 3)}

    @classmethod
    def load(cls, version_dir: Path) -> NeighbourGraph | None:
        """The graph saved in ``version_dir``, or None when it has none (a version built before graphs were saved).

        Raises:
            ValueError: The files are there but do not make a graph (shapes differ).
        """
        folder = version_dir / GRAPH_DIR
        if not (folder / "ids.npy").is_file():
            return None
        ids = np.load(folder / "ids.npy", mmap_mode="r")  # a searcher reads a few columns; a splice every row once
        scores = np.load(folder / "scores.npy", mmap_mode="r")
        info = json.loads((folder / "graph.json").read_text())
        if ids.shape != scores.shape or ids.ndim != 2:
            raise ValueError(f"the neighbour graph in {folder} is malformed: ids {ids.shape}, scores {scores.shape}")
        return cls(ids, scores, str(info.get("method", "exact")), float(info.get("seconds", 0.0)))


def graph_info(version_dir: Path) -> dict[str, object] | None:
    """What the graph saved in ``version_dir`` is (chunks, k, method, seconds, disk bytes), without loading it;
    None when the version has none."""
    folder = version_dir / GRAPH_DIR
    if not (folder / "graph.json").is_file():
        return None
    info = dict(json.loads((folder / "graph.json").read_text()))
    info["disk_bytes"] = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    return info


def _matrix_batches(vectors: np.ndarray, batch: int = ROW_BATCH) -> Batches:
    data = np.ascontiguousarray(vectors, np.float32)
    return lambda: ((start, data[start:start + batch]) for start in range(0, len(data), batch))


def compute_graph(
    vectors: np.ndarray | Batches, count: int | None = None, dimension: int | None = None,
    k: int = STORED_NEIGHBOURS, exact_limit: int = EXACT_LIMIT,
) -> NeighbourGraph:
    """The graph of a set of embeddings, exact up to ``exact_limit`` rows, approximate (IVF, SQ8) past it.

    Args:
        vectors: An ``(n, d)`` matrix, or a callable streaming it in batches (read twice past the exact limit).
        count: Rows (needed with batches).
        dimension: Columns (needed with batches).
        k: Neighbours per row.
        exact_limit: Largest ``n`` searched exactly.
    """
    started = time.perf_counter()
    if isinstance(vectors, np.ndarray):
        count, dimension = vectors.shape if vectors.ndim == 2 else (0, 0)
        batches = _matrix_batches(vectors)
    else:
        if count is None or dimension is None:
            raise ValueError("compute_graph needs count and dimension with streamed vectors")
        batches = vectors
    k = max(0, min(k, count - 1))
    if k == 0:
        return NeighbourGraph(np.zeros((count, 0), np.int32), np.zeros((count, 0), np.float32), "exact",
                              time.perf_counter() - started)
    exact = count <= exact_limit
    index = _exact_index(batches, dimension) if exact else _ivf_index(batches, count, dimension)
    ids = np.empty((count, k), np.int32)
    scores = np.empty((count, k), np.float32)
    for start, batch in batches():
        found_scores, found = index.search(np.ascontiguousarray(batch, np.float32), k + 1)
        rows = np.arange(start, start + len(batch))
        ids[rows], scores[rows] = _without_self(rows, found, found_scores, k)
    method = "exact" if exact else "ivf"
    graph = NeighbourGraph(ids, scores, method, time.perf_counter() - started)
    logger.info("neighbour graph of %d chunks (%s) in %.2f s", count, method, graph.seconds)
    return graph


def _exact_index(batches: Batches, dimension: int):  # type: ignore[no-untyped-def]
    import faiss

    index = faiss.IndexFlatIP(dimension)
    for _, batch in batches():
        index.add(np.ascontiguousarray(batch, np.float32))
    return index


def _ivf_index(batches: Batches, count: int, dimension: int):  # type: ignore[no-untyped-def]
    import faiss

    lists = max(1, int(4 * math.sqrt(count)))
    stride = max(1, count // (lists * IVF_TRAIN_PER_LIST))
    sample = np.vstack([batch[(-start) % stride::stride] for start, batch in batches()])
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dimension, lists, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(sample, np.float32))
    for _, batch in batches():
        index.add(np.ascontiguousarray(batch, np.float32))
    index.nprobe = min(IVF_PROBES, lists)
    return index


def _without_self(
    rows: np.ndarray, found: np.ndarray, found_scores: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's first ``k`` found neighbours other than itself (and other than missing hits), padded."""
    keep = (found != rows[:, None]) & (found >= 0)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept hits first, in their found order
    ids = np.take_along_axis(found, order, 1)
    scores = np.take_along_axis(found_scores, order, 1).astype(np.float32)
    valid = np.take_along_axis(keep, order, 1)
    ids = np.where(valid, ids, rows[:, None]).astype(np.int32)
    scores = np.where(valid, scores, -np.inf).astype(np.float32)
    return ids, scores


def exact_rows(
    vectors: np.ndarray | VectorSource, rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``k`` nearest other rows of ``vectors`` for each of ``rows`` (``(len(rows), k)`` ids, scores).

    ``ROWS_PER_SWEEP`` rows are searched per pass over the vectors; a :class:`VectorSource` is streamed, so memory
    holds those rows and one batch rather than every vector.
    """
    import faiss

    if isinstance(vectors, np.ndarray):  # searched whole: one batch
        vectors = VectorSource.of_matrix(vectors, batch=max(len(vectors), 1))
    rows = np.asarray(rows, np.int64)
    ids = np.empty((len(rows), k), np.int32)
    scores = np.empty((len(rows), k), np.float32)
    depth = min(k + 1, vectors.count)
    for first in range(0, len(rows), ROWS_PER_SWEEP):
        group = rows[first:first + ROWS_PER_SWEEP]
        queries = np.ascontiguousarray(vectors.rows(group), np.float32)
        best_scores = np.full((len(group), depth), -np.inf, np.float32)
        best = np.full((len(group), depth), -1, np.int64)
        for start, batch in vectors.batches():
            found_scores, found = faiss.knn(queries, np.ascontiguousarray(batch, np.float32),
                                            min(depth, len(batch)), metric=faiss.METRIC_INNER_PRODUCT)
            merged = np.concatenate([best, np.where(found >= 0, found + start, -1)], axis=1)
            merged_scores = np.concatenate([best_scores, found_scores], axis=1)
            order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :depth]
            best, best_scores = np.take_along_axis(merged, order, 1), np.take_along_axis(merged_scores, order, 1)
        ids[first:first + len(group)], scores[first:first + len(group)] = _without_self(group, best, best_scores, k)
    return ids, scores


def splice_graph(
    previous: NeighbourGraph, pieces: Sequence[Piece], vectors: np.ndarray | VectorSource,
    k: int = STORED_NEIGHBOURS,
) -> NeighbourGraph:
    """The graph of a new version derived from the previous version's graph.

    Raises:
        ValueError: The pieces do not fit the previous graph or the new vectors.

    Args:
        previous: The previous version's graph.
        pieces: The new version's positions in order, as runs of kept and fresh chunks (an update's pieces).
        vectors: Every embedding of the new version, by position: a matrix, or a :class:`VectorSource` that is
            streamed (a document update reads them from the chunk store, so that memory holds a batch, the fresh
            chunks and the graph rather than every vector: 1.5 GB at a million chunks).
        k: Neighbours per chunk (fewer in an index of ``k`` chunks or fewer); a previous graph that holds another
            number (its index was that small) is computed again.
    """
    started = time.perf_counter()
    source = vectors if isinstance(vectors, VectorSource) else VectorSource.of_matrix(vectors)
    count = source.count
    k = min(k, max(count - 1, 0))
    old_to_new = np.full(len(previous), -1, np.int64)
    fresh_parts: list[np.ndarray] = []
    position = 0
    for piece in pieces:
        if piece.start is None:
            fresh_parts.append(np.arange(position, position + piece.count))
        elif piece.start + piece.count > len(previous):
            raise ValueError(f"the previous graph has {len(previous)} chunks, a kept run reaches "
                             f"{piece.start + piece.count}")
        else:
            old_to_new[piece.start:piece.start + piece.count] = np.arange(position, position + piece.count)
        position += piece.count
    if position != count:
        raise ValueError(f"the pieces cover {position} positions, the new version has {count} vectors")
    fresh = np.concatenate(fresh_parts) if fresh_parts else np.zeros(0, np.int64)
    kept_old = np.flatnonzero(old_to_new >= 0)
    kept_new = old_to_new[kept_old]
    old_ids = previous.ids[kept_old].astype(np.int64)
    old_scores = previous.scores[kept_old]
    renumbered = old_to_new[old_ids]
    real = np.isfinite(old_scores) & (old_ids != kept_old[:, None])
    lost = (real & (renumbered < 0)).any(axis=1) | (real.sum(axis=1) < k)  # a neighbour deleted, or a short row
    if len(fresh) + int(lost.sum()) > RECOMPUTE_SHARE * count or k != previous.k:
        graph = compute_graph(source.batches, count, source.dimension, k=k)
        return NeighbourGraph(graph.ids, graph.scores, graph.method, time.perf_counter() - started)
    approximate = previous.method != "exact"
    ids = np.empty((count, k), np.int32)
    scores = np.empty((count, k), np.float32)
    keep = ~lost
    ids[kept_new[keep]] = np.where(real[keep], renumbered[keep], kept_new[keep][:, None]).astype(np.int32)
    scores[kept_new[keep]] = np.where(real[keep], old_scores[keep], -np.inf)
    if approximate:  # an approximate graph mends a row that lost a neighbour from its neighbours' neighbours
        repaired = kept_new[lost]
        ids[repaired], scores[repaired] = _mended(source, repaired, old_ids[lost], previous.ids, old_to_new, k)
        again, rows_new = fresh, kept_new
    else:
        again, rows_new = np.concatenate([fresh, kept_new[lost]]).astype(np.int64), kept_new[keep]
    if len(fresh) and len(rows_new):
        _take_in_fresh(source, fresh, rows_new, ids, scores)
    if len(again):
        ids[again], scores[again] = exact_rows(source, again, k)
    graph = NeighbourGraph(ids, scores, previous.method, time.perf_counter() - started)
    logger.info("neighbour graph spliced: %d chunks, %d searched again, %d mended, in %.2f s", count, len(again),
                int(lost.sum()) if approximate else 0, graph.seconds)
    return graph


def _take_in_fresh(
    source: VectorSource, fresh: np.ndarray, rows: np.ndarray, ids: np.ndarray, scores: np.ndarray
) -> None:
    """Merge the fresh chunks into the lists of ``rows`` where they come nearer, in one pass over the vectors
    (in place; a block of rows at a time, so that its similarities to every fresh chunk stay under
    ``SIMILARITY_BLOCK`` values)."""
    k = ids.shape[1]
    fresh_vectors = np.ascontiguousarray(source.rows(fresh), np.float32)
    wanted = np.zeros(source.count, bool)
    wanted[rows] = True
    block = max(1, SIMILARITY_BLOCK // max(len(fresh), 1))
    for start, batch in source.batches():
        inside = np.flatnonzero(wanted[start:start + len(batch)])
        for first in range(0, len(inside), block):
            local = inside[first:first + block]
            sims = np.asarray(batch[local], np.float32) @ fresh_vectors.T
            chosen = start + local
            nearer = sims.max(axis=1) > scores[chosen, -1]  # only these rows change
            chosen, sims = chosen[nearer], sims[nearer]
            merged_ids = np.concatenate([ids[chosen], np.broadcast_to(fresh, sims.shape).astype(np.int32)], axis=1)
            merged_scores = np.concatenate([scores[chosen], sims.astype(np.float32)], axis=1)
            order = np.lexsort((merged_ids, -merged_scores), axis=1)[:, :k]
            ids[chosen] = np.take_along_axis(merged_ids, order, 1)
            scores[chosen] = np.take_along_axis(merged_scores, order, 1)


def _mended(
    source: VectorSource, rows: np.ndarray, old_lists: np.ndarray, previous_ids: np.ndarray,
    old_to_new: np.ndarray, k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """New lists for ``rows`` (new positions) chosen among their old neighbours and those neighbours' own old
    neighbours (deleted ones' included) that are still there, by exact similarity (the vectors read a block of
    ``ROW_BATCH`` rows at a time)."""
    ids = np.empty((len(rows), k), np.int32)
    scores = np.empty((len(rows), k), np.float32)
    for first in range(0, len(rows), ROW_BATCH):
        block = range(first, min(first + ROW_BATCH, len(rows)))
        around = [np.concatenate([old_lists[i], np.asarray(previous_ids[old_lists[i]]).ravel()]) for i in block]
        candidates = [np.unique(old_to_new[a]) for a in around]
        needed = np.unique(np.concatenate([*candidates, rows[first:first + len(block)]]))
        needed = needed[needed >= 0]
        table = np.ascontiguousarray(source.rows(needed), np.float32)
        for i, found_near in zip(block, candidates, strict=True):
            row = rows[i]
            near = found_near[(found_near >= 0) & (found_near != row)]
            sims = table[np.searchsorted(needed, near)] @ table[np.searchsorted(needed, row)]
            best = np.lexsort((near, -sims))[:k]
            found = len(best)
            ids[i, :found], scores[i, :found] = near[best], sims[best]
            ids[i, found:], scores[i, found:] = row, -np.inf
    return ids, scores
