"""Logged queries: pseudo-labelling where dense top-1 and BM25 top-1 agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finetune.pseudo import pseudo_label
from indexing.backends.bm25 import Bm25Config, Bm25Index
from indexing.backends.configs import config_of
from indexing.backends.faiss_index import FaissConfig, FaissIndex
from indexing.layout import current_version_dir
from indexing.store import ChunkStore
from mlsearch.settings import Settings
from tests.fakes import HashingEncoder


class FixedDense:
    """A vector index whose top hit is always one position (to make dense and BM25 disagree at will)."""

    def __init__(self, position: int) -> None:
        self.position = position

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return np.ones((len(queries), 1), np.float32), np.full((len(queries), 1), self.position, np.int64)


def _index_parts(index_dir: Path, settings: Settings):  # type: ignore[no-untyped-def]
    directory = current_version_dir(index_dir)
    store = ChunkStore(directory / ChunkStore.FILE)
    chunk_at = dict(enumerate(store))
    return store, chunk_at, Bm25Index.load(directory / "bm25", config_of(Bm25Config, settings))


def test_pseudo_label_keeps_only_agreeing_queries(built_index: Path, settings: Settings) -> None:
    _, chunk_at, bm25 = _index_parts(built_index, settings)
    queries = ["adam running averages of squared gradients", "population stability index bins",
               "adam running averages of squared gradients"]
    adam = int(bm25.search(queries[0], 1)[1][0, 0])
    labelled = pseudo_label(queries, HashingEncoder(), FixedDense(adam), bm25, chunk_at)  # type: ignore[arg-type]
    assert [(x.text, x.position, x.kind) for x in labelled] == [(queries[0], adam, "logged")]
    assert labelled[0].doc_id == chunk_at[adam].doc_id and labelled[0].chunk_id == chunk_at[adam].id


def test_pseudo_label_with_the_index_dense_backend(built_index: Path, settings: Settings) -> None:
    store, chunk_at, bm25 = _index_parts(built_index, settings)
    encoder = HashingEncoder()
    dense = FaissIndex(encoder.dimension, config_of(FaissConfig, settings))
    dense.add(store.embeddings(), list(chunk_at.values()))
    queries = ["Adam keeps running averages of gradients and squared gradients", "zzz unknown words only"]
    labelled = pseudo_label(queries, encoder, dense, bm25, chunk_at)
    assert [x.text for x in labelled] == [queries[0]]
    assert chunk_at[labelled[0].position].doc_id == "optimizers"
