"""Streaming, resumable builds: a build stopped mid-way is resumed, never trusting a damaged checkpoint."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from indexing.backends.configs import build_config, search_config
from indexing.build import build_index
from indexing.layout import current_version_dir, versions_dir
from indexing.store import ChunkStore
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import HashingEncoder

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["faiss", "annoy", "lsi", "bm25"]
CHECKPOINT = 7  # chunks per checkpoint: the corpus below has several dozen chunks


class StoppingEncoder(HashingEncoder):
    """A fake encoder that raises (as a kill would stop it) on its ``fail_on``-th call."""

    def __init__(self, fail_on: int) -> None:
        super().__init__()
        self.calls = 0
        self.fail_on = fail_on

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Embed like the fake encoder, until the ``fail_on``-th call."""
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt("killed (simulated)")
        return super().encode(texts, batch_size, show_progress)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Twelve documents of several sections each: several dozen chunks."""
    folder = tmp_path / "many"
    folder.mkdir()
    for d in range(12):
        sections = "\n\n".join(
            f"## Part {s}\n\nDocument {d} part {s} talks about topic{d * 7 + s} and gradient{s} descent, "
            f"with learning rate {d}.{s} and batch size {s * 8}." for s in range(5)
        )
        (folder / f"doc{d:02d}.md").write_text(f"---\ntitle: Doc {d}\n---\n# Doc {d}\n\n{sections}\n")
    return folder


@pytest.fixture
def resumable(settings: Settings) -> Settings:
    """Settings with a small checkpoint, so that a build of the test corpus makes several."""
    return settings.model_copy(update={"checkpoint_chunks": CHECKPOINT})


def _checkpoints(index_dir: Path) -> list[Path]:
    root = versions_dir(index_dir)
    return sorted(root.glob("*.tmp")) if root.is_dir() else []


def test_a_stopped_build_resumes_and_re_embeds_at_most_one_checkpoint(
    corpus: Path, resumable: Settings
) -> None:
    stopping = StoppingEncoder(fail_on=4)
    with pytest.raises(KeyboardInterrupt):
        build_index(build_config(resumable), stopping, corpus_dir=corpus, backends=BACKENDS)
    assert not resumable.index_dir.exists()  # nothing published
    assert len(_checkpoints(resumable.index_dir)) == 1

    encoder = HashingEncoder()
    summary = build_index(build_config(resumable), encoder, corpus_dir=corpus, backends=BACKENDS)
    assert summary.resumed == 3 * CHECKPOINT  # the three committed batches
    assert summary.reused == summary.resumed
    assert summary.embedded == summary.chunks - summary.resumed
    assert encoder.encoded_texts == summary.embedded
    assert _checkpoints(resumable.index_dir) == []

    # the result is the same index as one built in one go
    fresh = resumable.model_copy(update={"index_dir": resumable.index_dir.parent / "fresh"})
    straight = build_index(build_config(fresh), HashingEncoder(), corpus_dir=corpus, backends=BACKENDS)
    assert straight.chunks == summary.chunks
    resumed_store = ChunkStore(current_version_dir(resumable.index_dir) / ChunkStore.FILE)
    straight_store = ChunkStore(current_version_dir(fresh.index_dir) / ChunkStore.FILE)
    np.testing.assert_allclose(resumed_store.embeddings(), straight_store.embeddings(), atol=1e-6)
    for method in ("dense", "bm25", "lsi"):
        a = Searcher.open(resumable.index_dir, search_config(resumable), encoder=encoder)
        b = Searcher.open(fresh.index_dir, search_config(fresh), encoder=encoder)
        a, b = a.search("gradient descent", method=method), b.search("gradient descent", method=method)
        assert [h.id for h in a.hits] == [h.id for h in b.hits]


def test_the_published_index_is_served_while_a_build_stops(corpus: Path, resumable: Settings) -> None:
    first = build_index(build_config(resumable), HashingEncoder(), corpus_dir=corpus, backends=["faiss", "bm25"])
    (corpus / "doc00.md").write_text("---\ntitle: Doc 0\n---\n# Doc 0\n\n" + "\n\n".join(
        f"## New {s}\n\nBrand new words about regularisation{s} and weight decay." for s in range(30)))
    with pytest.raises(KeyboardInterrupt):
        build_index(build_config(resumable), StoppingEncoder(fail_on=2), corpus_dir=corpus, backends=["faiss", "bm25"])
    assert Searcher.open(resumable.index_dir, search_config(resumable),
                         encoder=HashingEncoder()).version == first.version

    again = build_index(build_config(resumable), HashingEncoder(), corpus_dir=corpus, backends=["faiss", "bm25"])
    new_chunks = again.chunks - (first.chunks - 5)  # doc00 had five chunks, all replaced
    assert again.resumed == CHECKPOINT
    assert again.embedded == new_chunks - CHECKPOINT
    assert again.reused == again.chunks - again.embedded


def test_a_damaged_checkpoint_is_discarded_and_logged(
    corpus: Path, resumable: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(KeyboardInterrupt):
        build_index(build_config(resumable), StoppingEncoder(fail_on=3), corpus_dir=corpus, backends=["bm25"])
    [checkpoint] = _checkpoints(resumable.index_dir)
    store = checkpoint / ChunkStore.FILE
    data = bytearray(store.read_bytes())
    data[100 : len(data) // 2] = os.urandom(len(data) // 2 - 100)
    store.write_bytes(bytes(data))

    encoder = HashingEncoder()
    with caplog.at_level(logging.WARNING):
        summary = build_index(build_config(resumable), encoder, corpus_dir=corpus, backends=["bm25"])
    assert summary.resumed == 0 and summary.embedded == summary.chunks
    assert "discarding the checkpoint" in caplog.text
    assert _checkpoints(resumable.index_dir) == []


def test_a_checkpoint_of_another_model_is_not_trusted(corpus: Path, resumable: Settings) -> None:
    with pytest.raises(KeyboardInterrupt):
        build_index(build_config(resumable), StoppingEncoder(fail_on=3), corpus_dir=corpus, backends=["bm25"])
    other = HashingEncoder(name="other-model")
    summary = build_index(build_config(resumable), other, corpus_dir=corpus, backends=["bm25"])
    assert summary.resumed == 0 and summary.embedded == summary.chunks


def test_checkpoint_rows_of_a_wrong_size_are_not_taken(corpus: Path, resumable: Settings) -> None:
    with pytest.raises(KeyboardInterrupt):
        build_index(build_config(resumable), StoppingEncoder(fail_on=3), corpus_dir=corpus, backends=["bm25"])
    [checkpoint] = _checkpoints(resumable.index_dir)
    connection = sqlite3.connect(checkpoint / ChunkStore.FILE)
    connection.execute("UPDATE chunks SET embedding = x'00' WHERE position = 0")
    connection.commit()
    connection.close()
    summary = build_index(build_config(resumable), HashingEncoder(), corpus_dir=corpus, backends=["bm25"])
    assert summary.resumed == 2 * CHECKPOINT - 1


_KILLABLE = """
import sys, time
from pathlib import Path
from indexing.backends.configs import build_config
from indexing.build import build_index
from mlsearch.settings import Settings
from tests.fakes import HashingEncoder

class Slow(HashingEncoder):
    def encode(self, texts, batch_size=32, show_progress=False):
        time.sleep(0.2)
        return super().encode(texts, batch_size, show_progress)

settings = Settings(index_dir=Path(sys.argv[2]), chunk_target_tokens=48, chunk_overlap_tokens=8, checkpoint_chunks=7)
build_index(build_config(settings), Slow(), corpus_dir=Path(sys.argv[1]), backends=["bm25"])
"""


def _embedded_rows(index_dir: Path) -> int:
    for checkpoint in _checkpoints(index_dir):
        try:
            connection = sqlite3.connect(f"file:{checkpoint / ChunkStore.FILE}?mode=ro", uri=True)
            count = connection.execute("SELECT COUNT(embedding) FROM chunks").fetchone()[0]
            connection.close()
            return int(count)
        except sqlite3.Error:
            continue
    return 0


@pytest.mark.slow  # a real process: about 5 s, most of it importing the libraries
def test_a_build_killed_with_sigkill_resumes(corpus: Path, resumable: Settings) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, str(corpus), str(resumable.index_dir)], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while (seen := _embedded_rows(resumable.index_dir)) < 2 * CHECKPOINT:
            assert process.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    summary = build_index(build_config(resumable), HashingEncoder(), corpus_dir=corpus, backends=["bm25"])
    assert summary.resumed >= seen
    assert summary.embedded <= summary.chunks - seen
    assert summary.resumed + summary.embedded == summary.chunks
