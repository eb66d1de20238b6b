"""Incremental updates: only changed chunks are embedded, bursts coalesce, and the result equals a clean rebuild."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest

from indexing import build, updates
from indexing.backends.configs import build_config, keyword_config, search_config, vector_config
from indexing.build import build_index
from indexing.docstore import DocumentStore
from indexing.layout import current_version_dir
from indexing.loaders.markdown import load_markdown_text
from indexing.manifest import Manifest
from indexing.neighbours import NeighbourGraph
from indexing.store import ChunkStore
from indexing.updates import DocumentUpdater
from mlsearch.errors import DocumentNotFoundError
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import HashingEncoder

BACKENDS = ["faiss", "annoy", "lsi", "bm25"]
WORDS = ("gradient boosting trees learning rate shrinkage residual variance bias regularisation kernel margin "
         "attention transformer token embedding cosine vector index cluster centroid outlier drift window").split()


def _doc(doc_id: str, body: str, title: str | None = None, tags: str = ""):  # type: ignore[no-untyped-def]
    text = f"# {title or doc_id.title()}\n\n{body}"
    if tags:
        text = f"---\ntags: [{tags}]\n---\n{text}"
    return load_markdown_text(text, f"api/{doc_id}", doc_id).document


def _updater(settings: Settings, encoder: HashingEncoder) -> DocumentUpdater:
    return DocumentUpdater(build_config(settings), lambda: encoder, coalesce_s=0.01)


def test_a_new_document_is_searchable_and_only_its_chunks_are_embedded(
    built_index: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    before = len(ChunkStore(current_version_dir(built_index) / ChunkStore.FILE))
    updater = _updater(settings, fake_encoder)
    receipt = updater.put(_doc("notes/xgboost", "XGBoost adds shrinkage and column subsampling to boosting."))
    encoded = fake_encoder.encoded_texts
    summary = updater.run_pending()
    assert summary is not None and summary.version == receipt.visible_in_version
    assert fake_encoder.encoded_texts - encoded == summary.embedded == 1
    assert summary.chunks == before + 1 and summary.reused == before
    searcher = Searcher.open(built_index, search_config(settings), encoder=fake_encoder)
    assert searcher.version == receipt.visible_in_version
    assert searcher.search("xgboost shrinkage subsampling", k=1, method="bm25").hits[0].doc_id == "notes/xgboost"
    assert updater.indexed_seq() == receipt.seq
    assert updater.run_pending() is None  # nothing left to do
    updater.close()


def test_an_edit_reembeds_only_the_changed_chunks(
    built_index: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    updater = _updater(settings, fake_encoder)
    paragraphs = [" ".join(random.Random(i).choices(WORDS, k=30)) + "." for i in range(6)]
    updater.put(_doc("long", "\n\n## Part\n\n".join(paragraphs)))
    first = updater.run_pending()
    assert first is not None and first.embedded >= 3
    paragraphs[2] = "Completely new words about isotonic calibration of classifier probabilities."
    updater.put(_doc("long", "\n\n## Part\n\n".join(paragraphs)))
    second = updater.run_pending()
    assert second is not None and second.embedded == 1
    updater.close()


def test_deleting_removes_the_document_and_unknown_ids_are_refused(
    built_index: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    updater = _updater(settings, fake_encoder)
    with pytest.raises(DocumentNotFoundError, match="no-such-doc"):
        updater.delete("no-such-doc")
    updater.delete("dropout")  # a document of the folder the index was built from
    updater.run_pending()
    assert "dropout" not in updater.indexed_documents()
    with pytest.raises(DocumentNotFoundError):
        updater.delete("dropout")
    updater.close()


def test_a_burst_of_writes_is_one_update_in_the_version_each_write_was_told(
    built_index: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    updater = _updater(settings, fake_encoder)
    receipts = [updater.put(_doc(f"burst/{i}", f"note number {i} about {WORDS[i]}")) for i in range(10)]
    assert len({r.visible_in_version for r in receipts}) == 1
    summary = updater.run_pending()
    assert summary is not None and summary.version == receipts[0].visible_in_version
    assert len(summary.changed) == 10
    later = updater.put(_doc("burst/late", "after the first update"))
    assert later.visible_in_version != summary.version
    updater.close()


def test_writes_survive_a_restart_and_are_applied_by_the_next_updater(
    built_index: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    updater = _updater(settings, fake_encoder)
    receipt = updater.put(_doc("durable", "written before the crash"))
    updater.store.close()  # the process dies before any update
    restarted = _updater(settings, fake_encoder)
    restarted.start()
    assert restarted.wait_until_indexed(receipt.seq, timeout=30)
    assert "durable" in restarted.indexed_documents()
    restarted.close()


def _results(index_dir: Path, settings: Settings, encoder: HashingEncoder) -> dict[str, list[tuple[str, float]]]:
    searcher = Searcher.open(index_dir, search_config(settings), encoder=encoder)
    out = {}
    for query in ("gradient boosting learning rate", "attention transformer token", "dropout", "drift window"):
        for method, backend in (("dense", "faiss"), ("dense", "annoy"), ("lsi", "faiss"), ("bm25", "faiss"),
                                ("hybrid", "faiss")):
            hits = searcher.search(query, k=8, method=method, backend=backend).hits
            out[f"{query}|{method}|{backend}"] = [(h.id, round(h.score, 4)) for h in hits]
    searcher.close()
    return out


@pytest.mark.parametrize("in_place_moves", [updates.IN_PLACE_MOVES, 0], ids=["store-edited-in-place", "store-copied"])
def test_many_writes_then_equal_to_a_clean_rebuild(
    built_index: Path, tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, in_place_moves: int,
) -> None:
    monkeypatch.setattr(updates, "IN_PLACE_MOVES", in_place_moves)
    updater = _updater(settings, fake_encoder)
    rng = random.Random(7)
    alive: set[str] = {"dropout", "optimizers", "drift", "faiss"}
    for step in range(60):
        if alive and rng.random() < 0.25:
            victim = rng.choice(sorted(alive))
            updater.delete(victim)
            alive.discard(victim)
        else:
            doc_id = f"doc{rng.randrange(15)}"
            updater.put(_doc(doc_id, " ".join(rng.choices(WORDS, k=rng.randrange(5, 80))) + ".",
                             tags=rng.choice(["", "odd", "even, odd"])))
            alive.add(doc_id)
        if step % 9 == 0:
            updater.run_pending()
    updater.run_pending()
    assert updater.refit_due()  # LSI holds folded-in texts until it is fitted again
    assert updater.refit() is not None
    assert not updater.refit_due()
    updated = current_version_dir(built_index)
    assert set(Manifest.load(updated).counts) >= {"chunks"}
    clean = settings.model_copy(update={"index_dir": tmp_path / "clean" / "default"})
    build_index(build_config(clean), fake_encoder, corpus_dir=tiny_corpus, backends=BACKENDS)
    a = ChunkStore(updated / ChunkStore.FILE)
    b = ChunkStore(current_version_dir(clean.index_dir) / ChunkStore.FILE)
    assert {c.doc_id for c in a} == alive
    assert [c.id for c in a] == [c.id for c in b]
    assert a.tags() == b.tags() and a.tags()
    for tag in b.tags():
        assert a.positions_with_tags([tag]).tolist() == b.positions_with_tags([tag]).tolist()
    np.testing.assert_allclose(a.embeddings(), b.embeddings(), atol=1e-6)
    spliced, rebuilt = NeighbourGraph.load(updated), NeighbourGraph.load(current_version_dir(clean.index_dir))
    assert spliced is not None and rebuilt is not None  # the same neighbours (ties may swap equal vectors)
    np.testing.assert_allclose(spliced.scores, rebuilt.scores, atol=1e-5)
    assert _results(built_index, settings, fake_encoder) == _results(clean.index_dir, clean, fake_encoder)
    assert DocumentStore.in_state_dir(settings.state_dir).last_seq == 60  # type: ignore[arg-type]
    updater.close()


def test_the_background_refit_follows_updates_and_a_stale_refit_is_discarded(
    built_index: Path, settings: Settings, fake_encoder: HashingEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[updates.UpdateSummary] = []
    updater = DocumentUpdater(build_config(settings), lambda: fake_encoder, coalesce_s=0.01,
                              on_published=published.append, refit_delay_s=0.05)
    receipt = updater.put(_doc("refit", "kernel margin outlier drift window"))
    update = updater.run_pending()
    assert update is not None and updater.refit_due()
    assert set(updates.pending_refits(Manifest.load(current_version_dir(built_index)))) == {"lsi", "annoy"}

    # a newer version is published while a refit fits: the refit is thrown away
    real_build = type(updates.keyword_backend("lsi")(keyword_config("lsi", settings))).build

    def build_then_update(self: object, texts: object) -> None:
        real_build(self, texts)  # type: ignore[arg-type]
        monkeypatch.setattr(type(self), "build", real_build)
        updater.put(_doc("meanwhile", "written while the refit ran"))
        updater.run_pending()

    monkeypatch.setattr(type(updates.keyword_backend("lsi")(keyword_config("lsi", settings))), "build",
                        build_then_update)
    assert updater.refit() is None
    assert updater.refit_due()

    updater.start()  # the thread refits the newer version once writes are quiet
    assert updater.wait_until_indexed(receipt.seq)
    deadline = time.monotonic() + 60
    while len(published) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not updater.refit_due()
    assert published[-1].changed == [] and published[-1].previous_version == published[-2].version
    updater.close()


def test_a_refit_adds_the_stored_vectors_a_batch_at_a_time(
    built_index: Path, settings: Settings, fake_encoder: HashingEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    updater = DocumentUpdater(build_config(settings), lambda: fake_encoder, coalesce_s=0.01)
    try:
        updater.put(_doc("batches", "kernel margin outlier drift window"))
        assert updater.run_pending() is not None
    finally:
        updater.close()

    def whole(store: ChunkStore) -> np.ndarray:
        raise AssertionError("a refit reads the embeddings in batches, never all at once")

    monkeypatch.setattr(ChunkStore, "embeddings", whole)
    monkeypatch.setattr(build, "BACKEND_BATCH", 7)  # several batches even for the tiny corpus
    summary = updates.refit_pending(build_config(settings))
    assert summary is not None and updates.pending_refits(Manifest.load(current_version_dir(built_index))) == []
    version = current_version_dir(built_index)
    store = ChunkStore(version / ChunkStore.FILE)
    try:
        count = len(store)
    finally:
        store.close()
    annoy = updates.vector_backend("annoy").load(version / "annoy", vector_config("annoy", settings))
    assert len(annoy) == count  # every chunk, added over several batches
