"""The chunk store's read cache: a searcher's store keeps the chunks it read last, and answers as without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexing import store as store_module
from indexing.chunks import Chunk
from indexing.store import ChunkStore


def _store(tmp_path: Path) -> ChunkStore:
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i % 3}", title="T", heading=f"H{i}", text=f"text {i}", position=i)
              for i in range(8)]
    return ChunkStore.write(tmp_path, chunks, None)


def test_a_caching_store_answers_as_an_uncached_one_and_reads_each_chunk_once(tmp_path: Path) -> None:
    plain = _store(tmp_path)
    cached = ChunkStore(plain.path, cache_size=4)
    positions = list(range(len(plain)))
    assert cached.get([2, 0, 2, 99, -1]) == plain.get([2, 0, 2, 99, -1]) == {p: plain.get([p])[p] for p in (0, 2)}
    first = cached.get([0, 1])
    assert cached.get([1, 0])[0] is first[0]  # kept: not read and decoded again
    cached.get(positions[:6])  # more than it keeps: the least recently read go
    assert len(cached._cache) == 4 and 0 not in cached._cache
    assert cached.get(positions) == plain.get(positions)


def test_a_store_keeps_nothing_unless_asked(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.get([0, 1]) and not store._cache


def test_embeddings_read_by_key_in_several_statements_are_all_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i}", title="T", heading="H", text=f"text {i}", position=i) for i in range(5)]
    vectors = np.arange(5 * 4, dtype=np.float32).reshape(5, 4)
    store = ChunkStore.write(tmp_path, chunks, vectors)
    monkeypatch.setattr(store_module, "IN_LIMIT", 2)  # three statements for five keys
    found = store.embeddings_at([4, 0, 2, 1, 3, 9])
    assert sorted(found) == [0, 1, 2, 3, 4]
    assert all(np.array_equal(found[p], vectors[p]) for p in found)
    assert store.embedded_count(4) == 5 and store.embedded_count(8) == 0
