"""The promotion gate: the rule itself, and real scoring that refuses a worse candidate."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.datasets import EvalDataset
from finetune.filters import apply_filters
from finetune.gate import GatePolicy, compare, decide
from finetune.queries import HeuristicGenerator
from finetune.scoring import GateSet, score_model
from indexing.backends.configs import build_config, search_config
from indexing.chunking import Chunker, ChunkingConfig
from indexing.documents import load_corpus
from indexing.embedding import Encoder, SentenceTransformerEncoder
from mlsearch.settings import Settings
from tests.fakes import HashingEncoder


def _set(name: str, before: list[float], after: list[float]):  # type: ignore[no-untyped-def]
    ids = [f"q{i}" for i in range(len(before))]
    return compare(name, name, dict(zip(ids, before, strict=True)), dict(zip(ids, after, strict=True)))


def test_promotes_a_gain_on_the_primary_set_with_no_fall_elsewhere() -> None:
    decision = decide([_set("synthetic-dev", [0.2, 0.4, 0.5], [0.5, 0.6, 0.5]),
                       _set("builtin", [0.7, 0.8], [0.7, 0.79])], GatePolicy(min_gain=0.05, tolerance=0.02))
    assert decision.promoted
    assert "rose by +0.1667" in decision.reasons[0]
    summary = decision.summary()["sets"]["synthetic-dev"]
    assert (summary["wins"], summary["losses"], summary["ties"]) == (2, 0, 1)


def test_refuses_a_gain_below_the_margin() -> None:
    decision = decide([_set("synthetic-dev", [0.5, 0.5], [0.5, 0.51])], GatePolicy(min_gain=0.01))
    assert not decision.promoted
    assert "promotion needs at least +0.0100" in decision.reasons[0]


def test_refuses_when_any_set_falls_beyond_the_tolerance() -> None:
    decision = decide([_set("synthetic-dev", [0.2, 0.3], [0.6, 0.6]), _set("builtin", [0.8, 0.8], [0.7, 0.8])],
                      GatePolicy(tolerance=0.02))
    assert not decision.promoted
    assert any("builtin fell by 0.0500" in r for r in decision.reasons)


def test_significance_can_be_required_and_primary_must_exist() -> None:
    small = [_set("synthetic-dev", [0.2, 0.5, 0.4], [0.9, 0.4, 0.5])]
    assert decide(small, GatePolicy()).promoted
    refused = decide(small, GatePolicy(require_significance=True))
    assert not refused.promoted and "not significant" in refused.reasons[-1]
    with pytest.raises(ValueError, match="primary gate set 'eval'"):
        decide(small, GatePolicy(primary="eval"))


def _gate_sets(corpus: Path) -> tuple[list[GateSet], list[str]]:
    documents = load_corpus(corpus).documents
    chunks = Chunker(HashingEncoder().count_tokens, ChunkingConfig(100, 128, 8)).chunk_documents(documents)
    queries, _ = apply_filters(HeuristicGenerator(seed=0).generate(list(enumerate(chunks)), 3))
    dev = GateSet("synthetic-dev", "chunk-judged", queries={f"q{i}": x.text for i, x in enumerate(queries)},
                  qrels={f"q{i}": {x.chunk_id: 1} for i, x in enumerate(queries)})
    headings = [x for x in queries if x.kind == "heading"]
    dataset = EvalDataset(
        name="docs", kind="qrels", level="document", queries={f"h{i}": x.text for i, x in enumerate(headings)},
        qrels={f"h{i}": {x.doc_id: 1} for i, x in enumerate(headings)}, source=corpus, fingerprint="test",
        corpus_dir=corpus,
    )
    return [dev, GateSet("docs", "document-judged", dataset=dataset)], [c.id for c in chunks]


def _decide(champion: Encoder, challenger: Encoder, corpus: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = Settings(index_dir=tmp_path / "unused", chunk_target_tokens=100, chunk_overlap_tokens=8,
                        chunk_max_tokens=128)
    sets, _ = _gate_sets(corpus)
    before = score_model(champion, sets, corpus, build_config(settings), search_config(settings), tmp_path / "champion")
    after = score_model(challenger, sets, corpus, build_config(settings), search_config(settings),
                        tmp_path / "challenger")
    assert set(before) == set(after) == {"synthetic-dev", "docs"}
    return decide([compare(s.name, s.description, before[s.name], after[s.name]) for s in sets], GatePolicy())


def test_the_gate_refuses_a_randomly_initialised_candidate(
    finetune_corpus: Path, tiny_encoder: SentenceTransformerEncoder, tmp_path: Path
) -> None:
    champion = HashingEncoder()  # a sound lexical model; the candidate is an untrained random BERT
    decision = _decide(champion, tiny_encoder, finetune_corpus, tmp_path)
    assert not decision.promoted
    dev = decision.sets[0]
    assert dev.before > 0.8 and dev.after < dev.before - 0.2
    assert dev.test.losses > dev.test.wins and dev.test.t_pvalue < 0.05
    assert any("changed by -" in r for r in decision.reasons)


def test_the_gate_promotes_a_better_candidate(
    finetune_corpus: Path, tiny_encoder: SentenceTransformerEncoder, tmp_path: Path
) -> None:
    decision = _decide(tiny_encoder, HashingEncoder(), finetune_corpus, tmp_path)
    assert decision.promoted
    assert all(s.delta > 0 for s in decision.sets)


def test_scoring_the_current_index_equals_scoring_a_fresh_build(
    tiny_index: Path, finetune_corpus: Path, tiny_encoder: SentenceTransformerEncoder, settings: Settings,
    tmp_path: Path,
) -> None:
    from finetune.scoring import is_exact_copy
    from indexing.layout import current_version_dir
    from indexing.manifest import Manifest
    from indexing.store import ChunkStore

    manifest = Manifest.load(current_version_dir(tiny_index))
    assert is_exact_copy(manifest, tiny_encoder, manifest.corpus["fingerprint"], manifest.chunking)
    assert not is_exact_copy(manifest, HashingEncoder(), manifest.corpus["fingerprint"], manifest.chunking)
    store = ChunkStore(current_version_dir(tiny_index) / ChunkStore.FILE)
    chunks = list(store)
    dev = GateSet("synthetic-dev", "chunk-judged", queries={f"q{i}": c.text[:60] for i, c in enumerate(chunks)},
                  qrels={f"q{i}": {c.id: 1} for i, c in enumerate(chunks)})
    local = settings.model_copy(update={"chunk_max_tokens": manifest.chunking["max_tokens"]})
    reused = score_model(tiny_encoder, [dev], finetune_corpus, build_config(local), search_config(local),
                         tmp_path / "a", existing=tiny_index)
    built = score_model(tiny_encoder, [dev], finetune_corpus, build_config(local), search_config(local), tmp_path / "b")
    assert not (tmp_path / "a" / "index").exists() and (tmp_path / "b" / "index").exists()
    assert reused == built
