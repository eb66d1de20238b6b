"""A conformance suite that every vector backend must pass: agreement with exact NumPy search,
uneven batch sizes, and save → load. Parameterised over backends in ``test_vector_conformance.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexing.backends.base import VectorIndex
from indexing.backends.configs import backend_config
from mlsearch.settings import Settings

N_VECTORS = 3000
DIMENSION = 48
N_QUERIES = 100


def clustered_vectors(n: int, dimension: int, seed: int = 0) -> np.ndarray:
    """Unnormalised vectors around 30 centres, as embeddings of a topical corpus look."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, dimension)) * 2.0
    labels = rng.integers(0, len(centres), n)
    vectors = centres[labels] + rng.standard_normal((n, dimension))
    return (vectors * rng.uniform(0.5, 1.5, (n, 1))).astype(np.float32)


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k largest inner products, by brute force."""
    return np.argsort(-(queries @ data.T), axis=1, kind="stable")[:, :k]


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true top-k that was found."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def add_in_batches(index: VectorIndex, data: np.ndarray, batch: int) -> None:
    """Add ``data`` in batches of ``batch`` rows (the last one shorter)."""
    for start in range(0, len(data), batch):
        index.add(data[start : start + batch], [])


def search_in_batches(index: VectorIndex, queries: np.ndarray, k: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Search ``queries`` in batches of ``batch`` rows and stack the results."""
    scores, ids = [], []
    for start in range(0, len(queries), batch):
        s, i = index.search(queries[start : start + batch], k)
        scores.append(s)
        ids.append(i)
    return np.vstack(scores), np.vstack(ids)


def check_backend(cls: type, settings: Settings, tmp_path: Path, min_recall: float) -> dict[str, float]:
    """Run the whole suite on one backend class; returns the recalls measured."""
    data = clustered_vectors(N_VECTORS, DIMENSION)
    queries = clustered_vectors(N_QUERIES, DIMENSION, seed=1)
    truth = exact_top_k(data, queries, 10)

    config = backend_config(cls.name, settings)
    index = cls(DIMENSION, config)
    add_in_batches(index, data, batch=997)
    assert len(index) == N_VECTORS

    scores, ids = search_in_batches(index, queries, 10, batch=7)
    assert ids.shape == (N_QUERIES, 10) and scores.shape == (N_QUERIES, 10)
    recall = recall_at_k(ids, truth)
    assert recall >= min_recall, f"{cls.name}: recall@10 {recall:.3f} < {min_recall}"
    # scores are the true inner products, best first
    expected = np.take_along_axis(queries @ data.T, ids, axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-3)
    assert np.all(np.diff(scores, axis=1) <= 1e-5)

    index.save(tmp_path / cls.name)
    loaded = cls.load(tmp_path / cls.name, config)
    assert len(loaded) == N_VECTORS
    loaded_scores, loaded_ids = search_in_batches(loaded, queries, 10, batch=13)
    assert recall_at_k(loaded_ids, truth) >= min_recall
    np.testing.assert_array_equal(loaded_ids, ids)

    # k larger than the index, and a single 1-D query
    small = cls(DIMENSION, config)
    small.add(data[:5], [])
    s, i = small.search(queries[0], 10)
    assert sorted(i[0][i[0] >= 0].tolist()) == [0, 1, 2, 3, 4]
    return {"recall@10": recall}
