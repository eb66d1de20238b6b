"""Checksums of published versions, and a disk that fills up during a build."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from indexing.backends.configs import build_config, search_config
from indexing.build import build_index
from indexing.integrity import CHECKSUMS_FILE, verify_checksums
from indexing.layout import current_version_dir, versions_dir
from mlsearch.errors import IndexCorruptError, StorageError
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import HashingEncoder

BACKENDS = ["faiss", "annoy", "lsi", "bm25"]


def test_a_published_version_lists_the_sha256_of_every_file(built_index: Path) -> None:
    version = current_version_dir(built_index)
    listed = json.loads((version / CHECKSUMS_FILE).read_text())["files"]
    on_disk = {str(p.relative_to(version)) for p in version.rglob("*") if p.is_file() and p.name != CHECKSUMS_FILE}
    assert set(listed) == on_disk and "manifest.json" in listed and "faiss/faiss.index" in listed
    assert verify_checksums(version) == len(on_disk)
    (version / "lsi" / "idf.npy").write_bytes(b"\x00")
    with pytest.raises(IndexCorruptError, match=r"lsi/idf.npy \(1 bytes\) does not match"):
        verify_checksums(version)
    (version / "lsi" / "idf.npy").unlink()
    with pytest.raises(IndexCorruptError, match="lsi/idf.npy is missing"):
        verify_checksums(version)


@pytest.mark.parametrize("where", ["store", "backend", "checksums"])
def test_a_full_disk_during_a_build_is_a_clear_error_and_the_old_index_is_intact(
    built_index: Path, tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder,
    monkeypatch: pytest.MonkeyPatch, where: str,
) -> None:
    before = current_version_dir(built_index)
    versions = sorted(p.name for p in versions_dir(built_index).iterdir())
    (tiny_corpus / "new.md").write_text("# New\n\nBatch normalization rescales activations.\n")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    target = {"store": "indexing.store.ChunkStoreWriter.set_embeddings",  # while embedding
              "backend": "indexing.backends.annoy_index.AnnoyIndex.save",  # while writing a backend
              "checksums": "indexing.layout.write_checksums"}[where]  # while publishing
    monkeypatch.setattr(target, full)
    with pytest.raises(StorageError, match="the disk is full") as raised:
        build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=BACKENDS)
    assert "partial build was removed" in str(raised.value)
    assert current_version_dir(built_index) == before
    assert sorted(p.name for p in versions_dir(built_index).iterdir()) == versions  # no partial build left
    searcher = Searcher.open(built_index, search_config(settings), encoder=fake_encoder)
    assert verify_checksums(before) > 0
    assert searcher.search("dropout", k=3, method="hybrid").hits
