"""Label-free tuning of hybrid fusion and document scoring (fake encoder, tiny index)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

import finetune.tune as tune_module
from cli.app import app
from finetune.tune import Trial, choose, dev_queries, fusion_grid, imbalance, ndcg_at_10, tune, write_tuning
from indexing.backends.bm25 import Bm25Config, Bm25Index
from indexing.backends.configs import search_config
from indexing.integrity import verify_checksums
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from mlsearch.settings import Settings
from search.fusion import FusionConfig, untuned_fusion
from search.searcher import Searcher
from tests.fakes import HashingEncoder


@pytest.fixture
def searcher(built_index: Path, settings: Settings, fake_encoder: HashingEncoder) -> Searcher:
    return Searcher.open(built_index, search_config(settings), encoder=fake_encoder)


def test_ndcg_with_one_relevant_item() -> None:
    assert ndcg_at_10(["a", "b"], "a") == 1.0
    assert ndcg_at_10(["x", "a"], "a") == pytest.approx(1 / 1.5849625)
    assert ndcg_at_10([str(i) for i in range(20)], "15") == 0.0


def test_dev_queries_are_balanced_across_kinds(searcher: Searcher) -> None:
    queries = dev_queries(searcher, size=9, seed=1)
    assert 0 < len(queries) <= 9
    kinds = [q.kind for q in queries]
    assert max(kinds.count(k) for k in set(kinds)) - min(kinds.count(k) for k in set(kinds)) <= 1
    chunks = {p: c for p, c in enumerate(searcher.store)}
    assert all(chunks[q.position].doc_id == q.doc_id for q in queries)
    assert dev_queries(searcher, size=9, seed=1) == queries


def test_grid_keeps_both_sides_and_adds_lsi_only_when_built() -> None:
    two = fusion_grid(["dense", "bm25"])
    assert {c.kind for c in two} == {"rrf", "convex"} and {c.normalization for c in two} == {"minmax", "zscore"}
    assert all(min(c.weights) >= 0.2 for c in two)
    three = fusion_grid(["dense", "bm25", "lsi"])
    assert any(c.methods == ("dense", "bm25", "lsi") for c in three) and len(three) > len(two)


def test_choose_needs_the_gain_and_no_kind_falling_too_far() -> None:
    champion = Trial("default", {"a": 0.5, "b": 0.5}, 0.5)
    small = Trial("small", {"a": 0.502, "b": 0.502}, 0.502)
    lopsided = Trial("lopsided", {"a": 0.9, "b": 0.4}, 0.65)
    good = Trial("good", {"a": 0.6, "b": 0.49}, 0.545)
    assert choose(champion, [small], 0.005, 0.02)[0] is champion
    assert choose(champion, [small, lopsided], 0.005, 0.02)[0] is champion
    winner, reason = choose(champion, [small, lopsided, good], 0.005, 0.02)
    assert winner is good and "chose good" in reason


def test_choose_prefers_balanced_weights_within_the_band() -> None:
    champion = Trial("default", {"a": 0.5}, 0.5, FusionConfig())
    skewed = Trial("skewed", {"a": 0.60}, 0.60, FusionConfig(kind="convex", weights=(0.2, 0.8)))
    even = Trial("even", {"a": 0.59}, 0.59, FusionConfig(kind="convex", weights=(0.5, 0.5)))
    assert imbalance(skewed.config) == pytest.approx(0.6) and imbalance(even.config) == 0.0
    assert choose(champion, [skewed, even], 0.005, 0.02, band=0.0)[0] is skewed
    winner, reason = choose(champion, [skewed, even], 0.005, 0.02, band=0.02)
    assert winner is even and "most balanced" in reason
    assert choose(champion, [skewed, even], 0.005, 0.02, band=0.005)[0] is skewed


def test_tune_scores_every_variant_and_the_searcher_uses_the_written_choice(
    searcher: Searcher, built_index: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    result = tune(searcher, size=12)
    assert sum(result.queries.values()) == len(dev_queries(searcher, 12))
    names = [t.name for t in result.fusion_trials]
    assert "dense alone" in names and "bm25 alone" in names
    assert len(result.fusion_trials) == len(fusion_grid(["dense", "bm25", "lsi"])) + 3
    scores = [t.score for t in result.fusion_trials]
    assert scores == sorted(scores, reverse=True)
    assert result.fusion.source in ("mlsearch tune", "default (mlsearch tune kept it)")
    if result.fusion.source == "mlsearch tune":
        chosen = next(t for t in result.fusion_trials if t.name == result.fusion.label())
        assert chosen.score >= result.champion.score + 0.005
    assert len(result.doc_trials) == 3 and len(result.reasons) == 3 and result.reasons[0].startswith("BM25: ")
    assert result.bm25 is not None and result.bm25_trials[0].score >= result.bm25_trials[-1].score
    assert (result.bm25_index is None) == (result.bm25 == Bm25Config())

    before = current_version_dir(built_index)
    write_tuning(built_index, result)
    assert current_version_dir(built_index) != before  # published as a new version
    assert verify_checksums(current_version_dir(built_index)) > 0
    manifest = Manifest.load(current_version_dir(built_index))
    assert manifest.tuning is not None and manifest.tuning["fusion"] == result.fusion.to_dict()
    assert manifest.tuning["bm25"] == asdict(result.bm25)
    reopened = Searcher.open(built_index, search_config(settings), encoder=fake_encoder)
    assert reopened.fusion == result.fusion
    bm25 = reopened.backend("bm25")
    assert isinstance(bm25, Bm25Index) and bm25.config == result.bm25
    assert reopened.retrieve("adam momentum", 5, "hybrid")


def test_choose_bm25_keeps_the_index_options_when_no_change_gains(
    searcher: Searcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tune_module, "BM25_CHANGES", ({"k1": 1.5},))  # no change: nothing to try
    result = tune(searcher, size=12)
    assert result.bm25 == Bm25Config() and result.bm25_index is None
    assert [t.name for t in result.bm25_trials] == ["bm25 as built"]
    assert result.reasons[0].startswith("BM25: kept bm25 as built")


def test_a_tuned_fusion_over_a_missing_backend_falls_back_to_the_untuned_default(
    searcher: Searcher, built_index: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    directory = current_version_dir(built_index)
    manifest = Manifest.load(directory)
    manifest.tuning = {"fusion": FusionConfig(methods=("dense", "splade"), weights=(1, 1)).to_dict()}
    manifest.save(directory)
    assert Searcher.open(built_index, search_config(settings),
                         encoder=fake_encoder).fusion == untuned_fusion(settings.fusion, settings.rrf_k)


def test_tune_command_writes_the_manifest(built_index: Path, cli_fake_model: HashingEncoder) -> None:
    result = CliRunner().invoke(app, ["tune", "--index-dir", str(built_index), "--queries", "9", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["written"] is True and summary["fusion_label"]
    manifest = Manifest.load(current_version_dir(built_index))
    assert manifest.tuning is not None and manifest.tuning["fusion"] == summary["fusion"]

    dry = CliRunner().invoke(app, ["tune", "--index-dir", str(built_index), "--queries", "9", "--dry-run"])
    assert dry.exit_code == 0 and "not written" in dry.output and "| variant |" in dry.output
