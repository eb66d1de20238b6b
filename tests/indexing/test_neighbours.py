"""The chunks' neighbour graph: exact and approximate computation, saving, and splicing on updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexing import neighbours, updates
from indexing.backends.base import Piece
from indexing.backends.configs import build_config, search_config
from indexing.build import build_index
from indexing.integrity import verify_checksums
from indexing.layout import current_version_dir
from indexing.loaders.markdown import load_markdown_text
from indexing.neighbours import (
    GRAPH_DIR,
    STORED_NEIGHBOURS,
    NeighbourGraph,
    VectorSource,
    compute_graph,
    exact_rows,
    splice_graph,
)
from indexing.store import ChunkStore
from indexing.updates import DocumentUpdater
from mlsearch.errors import IndexCorruptError
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import HashingEncoder


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _brute_force(vectors: np.ndarray, k: int) -> np.ndarray:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


class _CountingSource:
    """A streamed source over a matrix, in small batches, that counts the rows it hands out."""

    def __init__(self, vectors: np.ndarray, batch: int = 128) -> None:
        self.vectors, self.batch, self.read, self.passes = vectors, batch, 0, 0

    def source(self) -> VectorSource:
        def batches():  # type: ignore[no-untyped-def]
            self.passes += 1
            for start in range(0, len(self.vectors), self.batch):
                self.read += len(self.vectors[start:start + self.batch])
                yield start, self.vectors[start:start + self.batch].copy()

        def rows(positions: np.ndarray) -> np.ndarray:
            self.read += len(positions)
            return self.vectors[np.asarray(positions, np.int64)].copy()

        return VectorSource(len(self.vectors), self.vectors.shape[1], batches, rows)


def test_the_exact_graph_holds_each_rows_nearest_other_rows() -> None:
    vectors = _unit(np.random.default_rng(0).normal(size=(700, 24)))
    graph = compute_graph(vectors, k=5)
    assert graph.method == "exact" and graph.ids.dtype == np.int32 and graph.ids.shape == (700, 5)
    assert np.array_equal(graph.ids, _brute_force(vectors, 5))
    assert np.all(np.diff(graph.scores, axis=1) <= 0)  # nearest first
    np.testing.assert_allclose(graph.scores[:, 0], np.sum(vectors * vectors[graph.ids[:, 0]], axis=1), atol=1e-5)
    ids, scores = exact_rows(vectors, np.array([3, 500]), 5)
    assert np.array_equal(ids, graph.ids[[3, 500]]) and np.allclose(scores, graph.scores[[3, 500]], atol=1e-5)


def test_tiny_and_duplicate_inputs_are_padded_with_the_row_itself() -> None:
    one = compute_graph(_unit(np.ones((1, 4))), k=3)
    assert one.ids.shape == (1, 0)
    three = compute_graph(_unit(np.eye(3, 4)), k=5)  # only two others each
    assert three.k == 2 and all(i not in row for i, row in enumerate(three.ids))


def test_streamed_batches_give_the_same_graph_as_a_matrix() -> None:
    vectors = _unit(np.random.default_rng(1).normal(size=(2500, 16)))
    batches = lambda: ((s, vectors[s:s + 300]) for s in range(0, len(vectors), 300))  # noqa: E731
    streamed = compute_graph(batches, count=len(vectors), dimension=16)
    assert np.array_equal(streamed.ids, compute_graph(vectors).ids)
    with pytest.raises(ValueError, match="count and dimension"):
        compute_graph(batches)


def test_past_the_exact_limit_the_inverted_file_finds_most_true_neighbours() -> None:
    rng = np.random.default_rng(2)
    centres = _unit(rng.normal(size=(60, 32)))
    vectors = _unit(centres[rng.integers(0, 60, 6000)] + 0.05 * rng.normal(size=(6000, 32)))
    graph = compute_graph(vectors, k=3, exact_limit=1000)
    assert graph.method == "ivf" and graph.ids.shape == (6000, 3)
    rows = rng.choice(6000, 300, replace=False)
    truth, _ = exact_rows(vectors, rows, 3)
    recall = np.mean([len(set(graph.ids[r]) & set(t)) / 3 for r, t in zip(rows, truth, strict=True)])
    assert recall >= 0.9
    assert all(r not in graph.ids[r] for r in rows)


def test_a_saved_graph_loads_back_and_a_malformed_one_is_refused(tmp_path: Path) -> None:
    graph = compute_graph(_unit(np.random.default_rng(3).normal(size=(50, 8))), k=4)
    assert NeighbourGraph.load(tmp_path) is None
    graph.save(tmp_path)
    loaded = NeighbourGraph.load(tmp_path)
    assert loaded is not None and np.array_equal(loaded.ids, graph.ids) and loaded.method == "exact"
    assert np.array_equal(loaded.first(2), graph.ids[:, :2])
    np.save(tmp_path / GRAPH_DIR / "scores.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="malformed"):
        NeighbourGraph.load(tmp_path)


def test_a_spliced_graph_equals_the_graph_computed_afresh() -> None:
    rng = np.random.default_rng(4)
    old = _unit(rng.normal(size=(3000, 32)))
    fresh = _unit(rng.normal(size=(45, 32)))
    # positions 100-149 deleted, 40 fresh chunks inserted at 950, 5 appended; everything else kept
    new = np.vstack([old[:100], old[150:1000], fresh[:40], old[1000:], fresh[40:]])
    pieces = [Piece(100, 0), Piece(850, 150), Piece(40, None), Piece(2000, 1000), Piece(5, None)]
    spliced = splice_graph(compute_graph(old), pieces, new)
    computed = compute_graph(new)
    assert np.array_equal(spliced.ids, computed.ids)
    np.testing.assert_allclose(spliced.scores, computed.scores, atol=1e-5)
    with pytest.raises(ValueError, match="cover"):
        splice_graph(compute_graph(old), pieces[:-1], new)
    with pytest.raises(ValueError, match="reaches"):
        splice_graph(compute_graph(old[:500]), pieces, new)


def test_streamed_vectors_give_the_same_exact_rows_and_splice(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(8)
    old = _unit(rng.normal(size=(1500, 24)))
    fresh = _unit(rng.normal(size=(30, 24)))
    new = np.vstack([old[:400], fresh[:20], old[480:], fresh[20:]])  # 80 deleted, 20 inserted, 10 appended
    pieces = [Piece(400, 0), Piece(20, None), Piece(1020, 480), Piece(10, None)]
    rows = np.array([5, 900, 401, 1449])
    monkeypatch.setattr(neighbours, "ROWS_PER_SWEEP", 3)  # two passes for four rows
    counting = _CountingSource(new)
    ids, scores = exact_rows(counting.source(), rows, 6)
    expected_ids, expected_scores = exact_rows(new, rows, 6)
    assert np.array_equal(ids, expected_ids) and counting.passes == 2
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    monkeypatch.setattr(neighbours, "SIMILARITY_BLOCK", 50)  # blocks of one or two rows against the 30 fresh
    counting = _CountingSource(new)
    spliced = splice_graph(compute_graph(old), pieces, counting.source())
    assert np.array_equal(spliced.ids, compute_graph(new).ids)
    assert counting.read < 40 * len(new)  # streamed a few times over, never held whole
    approximate = compute_graph(old, exact_limit=100)
    assert np.array_equal(splice_graph(approximate, pieces, _CountingSource(new, 77).source()).ids,
                          splice_graph(approximate, pieces, new).ids)


def test_a_spliced_approximate_graph_mends_rows_from_their_neighbours_neighbours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(6)
    centres = _unit(rng.normal(size=(40, 32)))
    old = _unit(centres[rng.integers(0, 40, 5000)] + 0.05 * rng.normal(size=(5000, 32)))
    fresh = _unit(centres[rng.integers(0, 40, 60)] + 0.05 * rng.normal(size=(60, 32)))
    previous = compute_graph(old, exact_limit=1000)
    assert previous.method == "ivf"
    searched: list[int] = []
    exact = neighbours.exact_rows

    def counted(vectors: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        searched.extend(rows.tolist())
        return exact(vectors, rows, k)

    monkeypatch.setattr(neighbours, "exact_rows", counted)
    new = np.vstack([old[:2000], fresh, old[2100:]])  # 100 deleted, 60 fresh in their place
    spliced = splice_graph(previous, [Piece(2000, 0), Piece(60, None), Piece(2900, 2100)], new)
    assert spliced.method == "ivf" and sorted(searched) == list(range(2000, 2060))  # only the fresh chunks
    old_rows = np.r_[0:2000, 2100:5000]
    mended = np.flatnonzero(np.isin(previous.ids[old_rows], np.arange(2000, 2100)).any(axis=1))
    mended = np.where(mended < 2000, mended, mended + 60)  # their new positions
    assert len(mended) > 50
    truth, _ = exact(new, mended, 3)
    recall = np.mean([len(set(f[:3]) & set(t)) / 3 for f, t in zip(spliced.ids[mended], truth, strict=True)])
    assert recall >= 0.85, recall
    assert np.isin(np.arange(2000, 2060), spliced.ids[:2000]).any()  # kept chunks took fresh ones in


def test_a_large_change_computes_the_graph_again() -> None:
    rng = np.random.default_rng(5)
    old = _unit(rng.normal(size=(400, 16)))
    new = _unit(rng.normal(size=(300, 16)))  # most of it fresh
    spliced = splice_graph(compute_graph(old), [Piece(100, 0), Piece(200, None)],
                           np.vstack([old[:100], new[:200]]))
    assert np.array_equal(spliced.ids, compute_graph(np.vstack([old[:100], new[:200]])).ids)


def test_a_build_saves_the_graph_under_its_checksums(
    built_index: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    version = current_version_dir(built_index)
    graph = NeighbourGraph.load(version)
    store = ChunkStore(version / ChunkStore.FILE)
    try:
        expected = compute_graph(store.embeddings())
    finally:
        store.close()
    assert graph is not None and graph.k == min(STORED_NEIGHBOURS, len(graph) - 1)
    np.testing.assert_allclose(graph.scores, expected.scores, atol=1e-5)
    searcher = Searcher.open(built_index, search_config(settings), encoder=fake_encoder)
    assert np.array_equal(searcher.neighbours, graph.first(settings.smoothing_neighbours))
    verify_checksums(version)
    ids = version / GRAPH_DIR / "ids.npy"
    ids.write_bytes(ids.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(IndexCorruptError):
        verify_checksums(version)


def test_a_dense_only_build_saves_no_graph(tiny_corpus: Path, settings: Settings, tmp_path: Path) -> None:
    custom = settings.model_copy(update={"index_dir": tmp_path / "dense"})
    build_index(build_config(custom), HashingEncoder(), corpus_dir=tiny_corpus, backends=["faiss"])
    assert NeighbourGraph.load(current_version_dir(custom.index_dir)) is None


def test_a_document_update_splices_the_graph(
    built_index: Path, settings: Settings, fake_encoder: HashingEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_again(*args: object, **kwargs: object) -> NeighbourGraph:
        raise AssertionError("an update splices the previous graph rather than computing it again")

    monkeypatch.setattr(updates, "compute_graph", not_again)
    read_whole: list[int] = []
    whole = ChunkStore.embeddings

    def counted(store: ChunkStore) -> np.ndarray:
        read_whole.append(len(store))
        return whole(store)

    monkeypatch.setattr(ChunkStore, "embeddings", counted)
    updater = DocumentUpdater(build_config(settings), lambda: fake_encoder, coalesce_s=0.01)
    try:
        updater.put(load_markdown_text("# Isotonic\n\nIsotonic regression calibrates classifier probabilities.",
                                       "api/isotonic", "isotonic").document)
        updater.delete("drift")
        assert updater.run_pending() is not None
    finally:
        updater.close()
    version = current_version_dir(built_index)
    graph = NeighbourGraph.load(version)
    store = ChunkStore(version / ChunkStore.FILE)
    try:
        expected = compute_graph(store.embeddings())
        assert graph is not None and len(graph) == len(store)
    finally:
        store.close()
    np.testing.assert_allclose(graph.scores, expected.scores, atol=1e-5)
    assert read_whole == [len(graph)]  # the check above; the update streamed the vectors rather than read them whole
    verify_checksums(version)
