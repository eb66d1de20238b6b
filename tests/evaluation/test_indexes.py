"""The evaluation index: a BEIR corpus through the standard build, cached; the default index reused."""

from __future__ import annotations

import shutil
from pathlib import Path

from evaluation.datasets import load_dataset
from evaluation.indexes import needed_backends, prepare_index, write_beir_corpus
from indexing.backends.configs import build_config
from indexing.build import build_index, corpus_fingerprint
from indexing.documents import load_corpus
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from indexing.store import ChunkStore
from mlsearch.settings import Settings
from tests.fakes import HashingEncoder


def test_needed_backends() -> None:
    assert needed_backends(["dense"], "annoy") == ["annoy"]
    assert needed_backends(["lsi", "bm25", "dense", "hybrid"], "faiss") == ["lsi", "bm25", "faiss"]
    assert needed_backends(["hybrid"], "faiss") == ["faiss", "bm25"]


def test_beir_corpus_becomes_markdown_the_loader_reads_back(beir_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "md"
    folder.mkdir()
    id_map = write_beir_corpus(beir_dir / "corpus.jsonl", folder)
    assert id_map["d1"] == "d1"
    unsafe = [f for f, original in id_map.items() if original == "doc/3"]
    assert len(unsafe) == 1 and "/" not in unsafe[0]
    loaded = load_corpus(folder)
    by_id = {d.meta["doc_id"]: d for d in loaded.documents}
    assert by_id["d1"].meta["title"] == "Dropout"
    assert "# not a heading" in str(by_id[unsafe[0]].content)  # kept as text, not made a heading
    assert by_id["d5"].content == "Empty text"  # an empty text is indexed by its title
    assert [s.path.name for s in loaded.skipped] == ["d7.md"]  # no title and no text: skipped, no crash


def test_beir_index_is_built_once_then_cached(
    beir_dir: Path, settings: Settings, fake_encoder: HashingEncoder, tmp_path: Path
) -> None:
    dataset = load_dataset(beir_dir)
    cache = tmp_path / "cache"
    first = prepare_index(dataset, build_config(settings), fake_encoder, ["faiss", "bm25"], cache)
    assert first.origin == "built" and first.id_map is not None
    assert first.index_dir.parent.parent == cache
    store = ChunkStore(first.index_dir / ChunkStore.FILE)
    assert {first.id_map[c.doc_id] for c in store} == {"d1", "d2", "doc/3", "d4", "d5", "d6"}
    store.close()
    # the Markdown copy is kept beside the index, and it is the corpus the manifest names (finetune reads it)
    assert first.corpus_dir == first.index_dir.parent / "corpus"
    manifest = Manifest.load(current_version_dir(first.index_dir))
    assert Path(manifest.corpus["path"]) == first.corpus_dir
    assert corpus_fingerprint(load_corpus(first.corpus_dir).documents) == manifest.corpus["fingerprint"]
    assert not list(first.index_dir.parent.glob(".beir-corpus-*"))  # no half-written copy left
    encoded = fake_encoder.encoded_texts
    again = prepare_index(dataset, build_config(settings), fake_encoder, ["faiss", "bm25"], cache)
    assert (again.origin, again.index_dir, again.id_map) == ("cache", first.index_dir, first.id_map)
    assert fake_encoder.encoded_texts == encoded
    other = prepare_index(dataset, build_config(settings), fake_encoder, ["faiss", "lsi"], cache)
    assert other.origin == "built" and other.index_dir != first.index_dir


def test_cached_beir_index_without_its_corpus_copy_gets_it_back(
    beir_dir: Path, settings: Settings, fake_encoder: HashingEncoder, tmp_path: Path
) -> None:
    """An entry cached before the copy was kept: the copy is written again, the index is not rebuilt."""
    dataset = load_dataset(beir_dir)
    cache = tmp_path / "cache"
    first = prepare_index(dataset, build_config(settings), fake_encoder, ["faiss", "bm25"], cache)
    assert first.corpus_dir is not None
    shutil.rmtree(first.corpus_dir)
    encoded = fake_encoder.encoded_texts
    again = prepare_index(dataset, build_config(settings), fake_encoder, ["faiss", "bm25"], cache)
    assert again.origin == "cache" and fake_encoder.encoded_texts == encoded
    assert again.corpus_dir == first.corpus_dir and again.corpus_dir.is_dir()
    manifest = Manifest.load(current_version_dir(again.index_dir))
    assert corpus_fingerprint(load_corpus(again.corpus_dir).documents) == manifest.corpus["fingerprint"]


def test_folder_corpus_reuses_the_default_index_only_when_it_matches(
    qrels_dir: Path, tiny_corpus: Path, built_index: Path, settings: Settings, fake_encoder: HashingEncoder,
    tmp_path: Path,
) -> None:
    dataset = load_dataset(qrels_dir, corpus_dir=tiny_corpus)
    cache = tmp_path / "cache"
    same = prepare_index(dataset, build_config(settings), fake_encoder, ["faiss", "lsi", "bm25"], cache)
    assert (same.origin, same.index_dir, same.id_map) == ("default", settings.index_dir, None)
    (tiny_corpus / "extra.md").write_text("# Extra\n\nA new article changes the corpus fingerprint.\n")
    changed = load_dataset(qrels_dir, corpus_dir=tiny_corpus)
    rebuilt = prepare_index(changed, build_config(settings), fake_encoder, ["faiss"], cache)
    assert rebuilt.origin == "built" and rebuilt.index_dir.is_relative_to(cache)
    other_model = HashingEncoder(name="another-fake")
    assert prepare_index(dataset, build_config(settings), other_model, ["faiss"], cache).origin == "built"


def test_default_index_without_a_backend_is_not_reused(
    qrels_dir: Path, tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder, tmp_path: Path
) -> None:
    build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=["faiss"])
    dataset = load_dataset(qrels_dir, corpus_dir=tiny_corpus)
    prepared = prepare_index(dataset, build_config(settings), fake_encoder, ["faiss", "bm25"], tmp_path / "cache")
    assert prepared.origin == "built"
