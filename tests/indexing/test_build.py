"""The build pipeline: manifest, incremental reuse, atomic swap, failure safety, model mismatch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from indexing.backends.configs import build_config, search_config
from indexing.backends.lsi import LsiIndex
from indexing.build import build_index
from indexing.layout import current_version_dir, versions_dir
from indexing.manifest import Manifest
from mlsearch.errors import CorpusError, IndexNotBuiltError, ModelMismatchError, UnknownBackendError
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import HashingEncoder

BACKENDS = ["faiss", "annoy", "lsi", "bm25"]


def test_build_writes_every_backend_and_a_manifest(
    tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    summary = build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=BACKENDS)
    assert summary.documents == 4 and summary.chunks >= 4
    assert summary.embedded == summary.chunks and summary.reused == 0
    assert summary.max_tokens <= settings.chunk_target_tokens or summary.max_tokens <= fake_encoder.max_seq_length
    directory = current_version_dir(settings.index_dir)
    assert settings.index_dir.is_symlink()
    for name in BACKENDS:
        assert (directory / name).is_dir()
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["model"]["name"] == "fake-hashing"
    assert manifest["model"]["weights_hash"] == fake_encoder.weights_hash
    assert manifest["model"]["dimension"] == 64
    assert manifest["metric"] == "inner_product"
    assert manifest["chunking"] == {"target_tokens": 48, "max_tokens": 128, "overlap_tokens": 8}
    assert len(manifest["corpus"]["fingerprint"]) == 64
    assert manifest["counts"]["chunks"] == summary.chunks
    assert set(manifest["backends"]) == set(BACKENDS)
    assert manifest["backends"]["faiss"]["factory"] == "Flat"
    assert "numpy" in manifest["library_versions"]


def test_rebuild_reuses_unchanged_embeddings(
    tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    first = build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=BACKENDS)
    again = build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=BACKENDS)
    assert (again.reused, again.embedded) == (first.chunks, 0)
    assert again.version != first.version

    (tiny_corpus / "faiss.txt").write_text("FAISS now also supports product quantization for compression.")
    (tiny_corpus / "new.md").write_text("---\ntitle: New\n---\nA brand new article about early stopping.")
    third = build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=BACKENDS)
    assert third.embedded == 2
    assert third.reused == third.chunks - 2


def test_rebuild_with_another_model_embeds_everything(
    tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=["faiss"])
    other = HashingEncoder(name="other-model")
    summary = build_index(build_config(settings), other, corpus_dir=tiny_corpus, backends=["faiss"])
    assert summary.reused == 0 and summary.embedded == summary.chunks


def test_failed_build_leaves_the_previous_index_whole(
    tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=BACKENDS)
    before = Searcher.open(settings.index_dir, search_config(settings), encoder=fake_encoder).search("dropout", k=3)

    def explode(self: LsiIndex, directory: Path) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(LsiIndex, "save", explode)
    (tiny_corpus / "dropout.md").write_text("---\ntitle: Changed\n---\nchanged text")
    with pytest.raises(OSError, match="simulated"):
        build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=BACKENDS)

    searcher = Searcher.open(settings.index_dir, search_config(settings), encoder=fake_encoder)
    assert searcher.version == first.version
    after = searcher.search("dropout", k=3)
    assert [h.id for h in after.hits] == [h.id for h in before.hits]
    leftovers = [p for p in versions_dir(settings.index_dir).iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1  # only the checkpoint of the stopped build: its chunk store, no backend
    assert sorted(p.name for p in leftovers[0].iterdir()) == ["checkpoint.json", "chunks.sqlite"]

    monkeypatch.undo()
    again = build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=BACKENDS)
    assert again.embedded == 0 and again.resumed >= 1
    assert [p for p in versions_dir(settings.index_dir).iterdir() if p.name.endswith(".tmp")] == []


def test_killed_build_leftovers_do_not_break_the_next_build(
    tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=["bm25"])
    stale = versions_dir(settings.index_dir) / "19990101T000000-deadbeef.tmp"
    stale.mkdir()
    (stale / "half-written").write_text("x")
    build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=["bm25"])
    assert not stale.exists()


def test_old_versions_are_pruned(tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder) -> None:
    for _ in range(4):
        build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=["bm25"])
    kept = [p for p in versions_dir(settings.index_dir).iterdir() if p.is_dir()]
    assert len(kept) == settings.keep_versions
    assert current_version_dir(settings.index_dir) in [p.resolve() for p in kept]


def test_opening_with_another_model_is_a_clear_error(built_index: Path, settings: Settings) -> None:
    with pytest.raises(ModelMismatchError, match="fake-hashing"):
        Searcher.open(built_index, search_config(settings), encoder=HashingEncoder(name="intruder"))


def test_bad_inputs_are_clear_errors(tmp_path: Path, settings: Settings, fake_encoder: HashingEncoder) -> None:
    with pytest.raises(CorpusError):
        build_index(build_config(settings), fake_encoder, corpus_dir=tmp_path / "missing")
    with pytest.raises(UnknownBackendError, match="valid"):
        build_index(build_config(settings), fake_encoder, corpus_dir=tmp_path, backends=["faiss", "nope"])
    with pytest.raises(IndexNotBuiltError):
        Manifest.load(tmp_path / "never-built")


def test_a_real_directory_in_the_way_is_not_replaced(
    tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    settings.index_dir.mkdir(parents=True)
    (settings.index_dir / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=["bm25"])
    assert (settings.index_dir / "precious.txt").read_text() == "keep me"
    assert not os.path.islink(settings.index_dir)
