"""Logged queries: reading them, and pseudo-labelling where dense top-1 and BM25 top-1 agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from finetune.pseudo import pseudo_label, read_query_file
from indexing.backends.bm25 import Bm25Index
from indexing.backends.faiss_index import FaissIndex
from indexing.layout import current_version_dir
from indexing.store import ChunkStore
from mlsearch.errors import DatasetError
from mlsearch.settings import Settings
from tests.fakes import HashingEncoder


def test_read_query_file_accepts_lines_and_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "queries.txt"
    path.write_text('# logged\nwhat is dropout\n\n{"query": "adam learning rate", "ts": 1}\n{"text": "psi bins"}\n')
    assert read_query_file(path) == ["what is dropout", "adam learning rate", "psi bins"]


@pytest.mark.parametrize(("content", "message"), [
    ("{not json\n", r"queries.txt:1: not valid JSON"),
    ('ok\n{"other": 1}\n', r"queries.txt:2: .*'query'"),
    ("\n# only a comment\n", "no queries"),
])
def test_read_query_file_errors_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "queries.txt"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_query_file(path)
    with pytest.raises(DatasetError, match="not found"):
        read_query_file(tmp_path / "missing.txt")


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
    return store, chunk_at, Bm25Index.load(directory / "bm25", settings)


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
    dense = FaissIndex(encoder.dimension, settings)
    dense.add(store.embeddings(), list(chunk_at.values()))
    queries = ["Adam keeps running averages of gradients and squared gradients", "zzz unknown words only"]
    labelled = pseudo_label(queries, encoder, dense, bm25, chunk_at)
    assert [x.text for x in labelled] == [queries[0]]
    assert chunk_at[labelled[0].position].doc_id == "optimizers"
