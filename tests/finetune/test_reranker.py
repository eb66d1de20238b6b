"""Cross-encoder reranking and its label-free training, with a tiny BERT cross-encoder built from a config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from finetune.gate import GatePolicy
from finetune.reranker import RerankerOptions, run_reranker_training
from indexing.backends.configs import search_config
from indexing.embedding import SentenceTransformerEncoder
from indexing.manifest import Manifest
from mlsearch.errors import BadQueryError, ModelLoadError
from mlsearch.settings import Settings
from search.rerank import Reranker
from search.searcher import Searcher


@pytest.fixture(scope="module")
def tiny_cross_encoder(tiny_bert_dir: Path) -> Path:
    """A tiny random BERT saved as a one-output CrossEncoder folder (never downloaded)."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(tiny_bert_dir.parent / "raw"), num_labels=1, max_length=64, local_files_only=True)
    out = tiny_bert_dir.parent / "cross-encoder"
    model.save(str(out))
    return out


def test_rerank_reorders_the_head_and_keeps_the_tail(tiny_cross_encoder: Path) -> None:
    reranker = Reranker.load(tiny_cross_encoder)
    texts = {0: "dropout zeroes activations", 1: "adam keeps running averages", 2: "canary releases", 3: "faiss"}
    ranked = [(0, 0.9), (1, 0.8), (2, 0.7), (3, 0.6)]
    out = reranker.rerank("dropout", ranked, texts, top_n=3)
    scores = reranker.score("dropout", [texts[0], texts[1], texts[2]])
    assert sorted(p for p, _ in out[:3]) == [0, 1, 2] and out[3][0] == 3
    assert [s for _, s in out[:3]] == sorted(scores.tolist(), reverse=True)
    assert out[3][1] < out[2][1]
    with pytest.raises(ValueError):
        reranker.rerank("dropout", ranked, texts, top_n=0)
    with pytest.raises(ModelLoadError):
        Reranker.load(tiny_cross_encoder.parent / "missing")


def test_a_blend_file_sets_the_cross_encoders_share(tiny_cross_encoder: Path, tmp_path: Path) -> None:
    import shutil

    from search.rerank import BLEND_FILE

    folder = tmp_path / "blended"
    shutil.copytree(tiny_cross_encoder, folder)
    (folder / BLEND_FILE).write_text(json.dumps({"weight": 0.0}))
    reranker = Reranker.load(folder)
    texts = {0: "dropout zeroes activations", 1: "adam keeps running averages", 2: "canary releases"}
    ranked = [(2, 0.9), (0, 0.5), (1, 0.1)]
    assert reranker.weight == 0.0
    assert [p for p, _ in reranker.rerank("dropout", ranked, texts, top_n=3)] == [2, 0, 1]  # weight 0: as it was
    assert Reranker.load(tiny_cross_encoder).weight == 1.0
    (folder / BLEND_FILE).write_text(json.dumps({"weight": 3}))
    with pytest.raises(ModelLoadError, match="unreadable"):
        Reranker.load(folder)


def test_search_with_rerank_uses_the_configured_cross_encoder(
    tiny_index: Path, settings: Settings, tiny_encoder: SentenceTransformerEncoder, tiny_cross_encoder: Path
) -> None:
    plain = Searcher.open(tiny_index, search_config(settings), encoder=tiny_encoder)
    with pytest.raises(BadQueryError, match="no reranker"):
        plain.search("adam running averages", k=3, rerank=True)
    local = settings.model_copy(update={"reranker": tiny_cross_encoder, "rerank_top_n": 5})
    searcher = Searcher.open(tiny_index, search_config(local), encoder=tiny_encoder)
    reranked = searcher.search("adam running averages", k=3, method="hybrid", rerank=True)
    head = {p for p, _ in searcher.retrieve("adam running averages", 5, "hybrid")}
    assert len(reranked.hits) == 3 and {h.position for h in reranked.hits} <= head


@pytest.mark.slow
def test_training_is_gated_and_a_promoted_reranker_is_named_in_the_manifest(
    tiny_index: Path, settings: Settings, tiny_encoder: SentenceTransformerEncoder, tmp_path: Path
) -> None:
    searcher = Searcher.open(tiny_index, search_config(settings), encoder=tiny_encoder)
    base = Path(tiny_encoder.name).parent / "raw"
    options = RerankerOptions(out=tmp_path / "rr", base_model=base, max_steps=2, batch_size=4, max_length=64,
                              top_n=5, max_train_queries=12, max_dev_queries=8,
                              policy=GatePolicy(min_gain=-1.0, tolerance=1.0))
    result = run_reranker_training(searcher, options)
    assert result.promoted and result.model_dir == tmp_path / "rr" and result.steps == 2
    assert result.training_queries > 0 and result.split["dev_queries"] > 0
    manifest = Manifest.load(searcher.directory)
    assert manifest.tuning is not None and manifest.tuning["reranker"]["path"] == str((tmp_path / "rr").resolve())
    assert Searcher.open(tiny_index, search_config(settings),
                         encoder=tiny_encoder).reranker.name == str((tmp_path / "rr").resolve())

    strict = RerankerOptions(out=tmp_path / "rr2", base_model=base, max_steps=1, batch_size=4, max_length=64,
                             top_n=5, max_train_queries=8, max_dev_queries=8, policy=GatePolicy(min_gain=2.0))
    rejected = run_reranker_training(searcher, strict)
    assert not rejected.promoted and rejected.model_dir.name == "rr2.rejected" and rejected.model_dir.is_dir()
    assert any("promotion needs" in reason for reason in rejected.decision.reasons)


@pytest.mark.slow
def test_rerank_train_command(
    tiny_index: Path, tiny_encoder: SentenceTransformerEncoder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cli.commands import common

    monkeypatch.setattr(common, "get_encoder", lambda settings, model=None: tiny_encoder)
    base = Path(tiny_encoder.name).parent / "raw"
    result = CliRunner().invoke(app, [
        "rerank-train", "--index-dir", str(tiny_index), "--out", str(tmp_path / "rr"), "--base-model", str(base),
        "--max-steps", "1", "--min-gain", "5", "--train-queries", "8", "--dev-queries", "5", "--json",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["promoted"] is False and summary["steps"] == 1
