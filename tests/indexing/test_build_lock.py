"""A full build and a document update of one index serialise, and pruning spares a version being served."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import indexing.build
from indexing.backends.configs import build_config, search_config
from indexing.build import BuildSummary, build_index
from indexing.layout import VersionLease, current_version_dir, prune, versions_dir
from indexing.loaders.markdown import load_markdown_text
from indexing.manifest import Manifest
from indexing.updates import DocumentUpdater, UpdateSummary
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import HashingEncoder

BACKENDS = ["faiss", "annoy", "lsi", "bm25"]


def test_an_update_during_a_build_waits_and_both_publish(
    built_index: Path, tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedding = threading.Event()
    update_done = threading.Event()
    real_embed = indexing.build.embed_missing

    def slow_embed(*args, **kwargs):  # type: ignore[no-untyped-def]
        embedding.set()
        update_done.wait(timeout=1.0)  # give the update its chance to run while the build's folder exists
        return real_embed(*args, **kwargs)

    monkeypatch.setattr(indexing.build, "embed_missing", slow_embed)
    (tiny_corpus / "boosting.md").write_text("# Boosting\n\nGradient boosting fits trees to the residuals.\n")
    built: list[BuildSummary] = []
    builder = threading.Thread(target=lambda: built.append(
        build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=BACKENDS)))
    builder.start()
    assert embedding.wait(timeout=60)
    updater = DocumentUpdater(build_config(settings), lambda: fake_encoder, coalesce_s=0.01)
    document = load_markdown_text("# Xgboost\n\nXGBoost adds shrinkage and column subsampling.", "api/x", "x").document
    receipt = updater.put(document)
    updated: UpdateSummary | None = updater.run_pending()
    update_done.set()
    builder.join(timeout=60)
    updater.close()
    assert built and updated is not None  # neither failed
    assert updated.previous_version == built[0].version  # the update waited for the build and applied on top
    current = current_version_dir(built_index)
    assert Manifest.load(current).version == updated.version == receipt.visible_in_version
    searcher = Searcher.open(built_index, search_config(settings), encoder=fake_encoder)
    found = {hit.doc_id for query in ("xgboost shrinkage subsampling", "gradient boosting residuals")
             for hit in searcher.search(query, k=1, method="bm25").hits}
    assert {"x", "boosting"} <= found
    assert not list(versions_dir(built_index).glob("*.tmp"))


def test_prune_spares_a_leased_version(
    built_index: Path, tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    served = current_version_dir(built_index)
    lease = VersionLease(served)
    for name in ("a", "b", "c"):
        (tiny_corpus / f"{name}.md").write_text(f"# {name}\n\nBatch normalisation {name}.\n")
        build_index(build_config(settings.model_copy(update={"keep_versions": 2})), fake_encoder,
                    corpus_dir=tiny_corpus, backends=BACKENDS)
    assert served.is_dir()  # three builds later, still there while served
    lease.release()
    prune(built_index, keep=2)
    assert not served.exists()
    assert len([p for p in versions_dir(built_index).iterdir() if p.is_dir()]) == 2
